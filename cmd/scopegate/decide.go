package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/scopegate/scopegate/internal/bundle"
	"github.com/scopegate/scopegate/internal/engine"
	"github.com/scopegate/scopegate/internal/request"
	"github.com/scopegate/scopegate/internal/source"
)

// Exit codes of scopegate decide (and scopes normalize), for scripts.
const (
	exitAllow   = 0
	exitFailure = 1 // anything unexpected
	exitInvalid = 2 // bad flags or input, or a policy/catalog that does not load
	exitDeny    = 3 // the answer is no
)

// policyFlags select what a local command evaluates: --catalog and
// --policies (the defaults, as serve), or --bundle.
type policyFlags struct {
	catalog, policies, bundle string
}

func (p *policyFlags) register(cmd *cobra.Command, withPolicies bool) {
	f := cmd.Flags()
	f.StringVar(&p.catalog, "catalog", "scopes.yaml", "scope catalog")
	if withPolicies {
		f.StringVar(&p.policies, "policies", "", policiesHelp)
	}
	f.StringVar(&p.bundle, "bundle", "", "use this OPA bundle (directory or .tar.gz) instead of --catalog/--policies")
}

// source loads the policy and catalog the flags name.
func (p *policyFlags) source(cmd *cobra.Command) (*source.Source, error) {
	if p.bundle != "" {
		if cmd.Flags().Changed("catalog") || cmd.Flags().Changed("policies") {
			return nil, &exitError{code: exitInvalid, err: errors.New("give --bundle or --catalog/--policies, not both")}
		}
		src, err := bundle.LoadPath(p.bundle, bundle.LoadOptions{})
		if err != nil {
			return nil, &exitError{code: exitInvalid, err: fmt.Errorf("load bundle: %w", err)}
		}
		return src, nil
	}
	src, err := source.FromFiles(p.catalog, policiesFor(p.catalog, p.policies))
	if err != nil {
		return nil, &exitError{code: exitInvalid, err: fmt.Errorf("load policy: %w", err)}
	}
	return src, nil
}

// decideFlagOf maps a /v1/decide field to the flag that fills it.
var decideFlagOf = map[string]string{
	"granted_scopes": "--scopes", "requested_scopes": "--requested", "action": "--action",
	"method": "--method", "path": "--path", "subject": "--subject", "client_id": "--client-id", "access_token": "--token",
}

func newDecideCmd() *cobra.Command {
	var (
		pf                                                 policyFlags
		scopes, requested, action, method, path, inputFile string
		tokenArg                                           string
		tf                                                 tokenFlags
		subject, clientID, explain                         string
		asJSON                                             bool
	)
	cmd := &cobra.Command{
		Use:   "decide",
		Short: "Decide one question locally, as POST /v1/decide would answer it",
		Long: `decide evaluates one question against the catalog and policies on disk (or a
bundle), with the same input checks and the same policy as the server, and
prints the answer: for security teams editing policies, and for scripts.

  scopegate decide --scopes "user:read project:write" --action project:launch
  scopegate decide --scopes project:manage --method POST --path /projects/42/launch --explain
  scopegate decide --scopes project:write --requested project:manage --action project:launch --json
  scopegate decide --input request.json        (a /v1/decide body; - reads stdin)

--explain adds the policy's reasoning; --explain=full adds OPA's evaluation
trace. Nothing is written to the decision log.

Exit status: 0 allow, 3 deny (whatever the reason, policy errors included),
2 invalid input or a policy that does not load, 1 anything else.`,
		// --explain takes an optional value, so pflag reads "--explain full"
		// as --explain and an argument "full": take that argument as the
		// flag's value, as --explain=full.
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 && cmd.Flags().Changed("explain") && explain == "notes" && (args[0] == "full" || args[0] == "notes") {
				explain = args[0]
				return nil
			}
			return cobra.NoArgs(cmd, args)
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			var body []byte
			if inputFile != "" {
				for _, f := range []string{"scopes", "requested", "action", "method", "path", "subject", "client-id", "token"} {
					if cmd.Flags().Changed(f) {
						return &exitError{code: exitInvalid, err: fmt.Errorf("give --input or --%s, not both", f)}
					}
				}
				var err error
				if inputFile == "-" {
					body, err = io.ReadAll(io.LimitReader(cmd.InOrStdin(), request.MaxBodyBytes+1))
				} else {
					body, err = os.ReadFile(inputFile)
				}
				if err != nil {
					return &exitError{code: exitInvalid, err: fmt.Errorf("read --input: %w", err)}
				}
			} else {
				req := map[string]any{}
				if cmd.Flags().Changed("scopes") || scopes != "" {
					req["granted_scopes"] = scopes
				}
				if cmd.Flags().Changed("requested") || requested != "" {
					req["requested_scopes"] = requested
				}
				if tokenArg != "" {
					tok := tokenArg
					if tok == "-" { // kept out of the shell's history and ps
						b, err := io.ReadAll(io.LimitReader(cmd.InOrStdin(), request.MaxTokenBytes+1))
						if err != nil {
							return &exitError{code: exitInvalid, err: fmt.Errorf("--token -: %w", err)}
						}
						tok = strings.TrimSpace(string(b))
					}
					req["access_token"] = tok
				}
				for k, v := range map[string]string{"action": action, "method": method, "path": path, "subject": subject, "client_id": clientID} {
					if v != "" {
						req[k] = v
					}
				}
				body, _ = json.Marshal(req)
			}
			in, bad := request.DecodeBytes(body)
			if bad != nil {
				if flag, ok := decideFlagOf[strings.SplitN(bad.Field, "[", 2)[0]]; ok && inputFile == "" {
					return &exitError{code: exitInvalid, err: fmt.Errorf("%s: %s", flag, bad.Message)}
				}
				return &exitError{code: exitInvalid, err: fmt.Errorf("invalid input: %s", bad.Error())}
			}
			var opt engine.Options
			switch explain {
			case "", "notes":
			case "full":
				opt.Trace = true
			default:
				return &exitError{code: exitInvalid, err: fmt.Errorf("--explain must be notes or full, not %q", explain)}
			}

			var refused *engine.Decision
			if in.AccessToken != "" {
				tokens, err := tf.config()
				if err != nil {
					return &exitError{code: exitInvalid, err: err}
				}
				if tokens == nil {
					return &exitError{code: exitInvalid, err: errors.New("--token needs --token-issuer, --token-audience and --token-jwks, --token-config, or --token-introspection-url")}
				}
				var bad *request.Error
				if refused, bad = tokens.Resolve(cmd.Context(), &in); bad != nil {
					return &exitError{code: exitInvalid, err: fmt.Errorf("invalid input: %s", bad.Error())}
				}
			}
			src, err := pf.source(cmd)
			if err != nil {
				return err
			}
			eng, err := engine.New(cmd.Context(), src, engine.WithCacheBytes(0))
			if err != nil {
				return &exitError{code: exitInvalid, err: err}
			}
			var d engine.Decision
			if refused != nil {
				d = *refused
			} else if d, err = eng.DecideInput(cmd.Context(), in, opt); err != nil {
				fmt.Fprintln(cmd.ErrOrStderr(), "scopegate: policy error (the answer is a deny):", err)
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetEscapeHTML(false)
				enc.SetIndent("", "  ")
				if err := enc.Encode(localDecision{Decision: d, BundleRevision: eng.Revision(), Policy: engine.Policy}); err != nil {
					return err
				}
			} else {
				printDecision(out, d, explain != "")
			}
			if !d.Allow {
				return &exitError{code: exitDeny, err: fmt.Errorf("denied (%s)", d.Reason)}
			}
			return nil
		},
	}
	pf.register(cmd, true)
	f := cmd.Flags()
	f.StringVar(&scopes, "scopes", "", `the token's granted scopes, space-separated ("" or none: the default scope)`)
	f.StringVar(&requested, "requested", "", "the scopes the app requested, space-separated (optional)")
	f.StringVar(&action, "action", "", "the action: a catalog scope or a named action")
	f.StringVar(&method, "method", "", "a route's HTTP method (with --path), instead of --action")
	f.StringVar(&path, "path", "", "a route's path (with --method), instead of --action")
	f.StringVar(&subject, "subject", "", "who is asking (optional)")
	f.StringVar(&clientID, "client-id", "", "the OAuth client (optional)")
	f.StringVar(&inputFile, "input", "", "read a whole /v1/decide request body from this file (- for stdin)")
	f.StringVar(&tokenArg, "token", "", "the end user's access token instead of --scopes (- reads it from stdin); needs --token-issuer, --token-audience and --token-jwks, --token-config, or --token-introspection-url")
	tf.register(f)
	f.StringVar(&explain, "explain", "", "print the reasoning; =full adds OPA's trace")
	f.Lookup("explain").NoOptDefVal = "notes"
	f.BoolVar(&asJSON, "json", false, "print the decision as JSON, as /v1/decide answers it")
	return cmd
}

// localDecision is /v1/decide's answer without a decision id: nothing is
// logged locally.
type localDecision struct {
	engine.Decision
	BundleRevision string `json:"bundle_revision"`
	Policy         string `json:"policy"`
}

func printDecision(w io.Writer, d engine.Decision, explain bool) {
	verdict := "deny (" + d.Reason + ")"
	if d.Allow {
		verdict = "allow"
	}
	head := verdict
	if d.Action != "" {
		head += ": action " + d.Action
	}
	if d.Route != "" {
		head += " (route " + d.Route + ")"
	}
	if d.Sensitive {
		head += ", sensitive"
	}
	fmt.Fprintln(w, head)
	line := func(label string, v string) {
		if v != "" {
			fmt.Fprintf(w, "  %-26s %s\n", label+":", v)
		}
	}
	list := func(xs []string) string { return strings.Join(xs, ", ") }
	line("required any of", list(d.RequiredAnyOf))
	line("granted (effective)", list(d.GrantedEffective))
	line("matched", list(d.Matched))
	line("missing", list(d.Missing))
	line("unknown scopes", list(d.UnknownScopes))
	if len(d.RequestedNotGranted) > 0 {
		v := list(d.RequestedNotGranted)
		if d.NarrowedByUser {
			v += " (the user granted less than requested: that is why)"
		}
		line("requested, not granted", v)
	}
	line("remedy", d.Remedy)
	if explain {
		fmt.Fprintln(w, "  why:")
		for _, e := range d.Explain {
			fmt.Fprintf(w, "    - %s\n", e)
		}
	}
	if len(d.Trace) > 0 {
		fmt.Fprintln(w, "  trace:")
		for _, t := range d.Trace {
			fmt.Fprintf(w, "    %s\n", t)
		}
	}
}
