package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/open-policy-agent/opa/v1/util"
	"github.com/spf13/cobra"

	"github.com/scopegate/scopegate/internal/bundle"
	"github.com/scopegate/scopegate/internal/catalog"
	"github.com/scopegate/scopegate/internal/engine"
	"github.com/scopegate/scopegate/internal/gen"
	"github.com/scopegate/scopegate/internal/request"
	"github.com/scopegate/scopegate/internal/scopeset"
)

// scopesFlags are shared by scopes and its subcommands.
type scopesFlags struct {
	catalog, bundle string
	json            bool
}

// view loads the catalog the flags name, as the server would serve it:
// from the generated data (of scopes.yaml, or inside a bundle).
func (f *scopesFlags) view(cmd *cobra.Command) (*engine.CatalogView, error) {
	var data map[string]any
	if f.bundle != "" {
		if cmd.Flags().Changed("catalog") {
			return nil, &exitError{code: exitInvalid, err: errors.New("give --bundle or --catalog, not both")}
		}
		src, err := bundle.LoadPath(f.bundle, bundle.LoadOptions{})
		if err != nil {
			return nil, &exitError{code: exitInvalid, err: fmt.Errorf("load bundle: %w", err)}
		}
		data = src.Data
	} else {
		c, err := catalog.LoadFile(f.catalog)
		if err != nil {
			return nil, &exitError{code: exitInvalid, err: fmt.Errorf("invalid catalog:\n%w", err)}
		}
		raw, err := gen.JSON(c)
		if err != nil {
			return nil, err
		}
		if err := util.UnmarshalJSON(raw, &data); err != nil {
			return nil, fmt.Errorf("decode catalog data: %w", err)
		}
	}
	v, err := engine.NewCatalogView(data)
	if err != nil {
		return nil, &exitError{code: exitInvalid, err: err}
	}
	return v, nil
}

func writeJSONOut(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func newScopesCmd() *cobra.Command {
	var sf scopesFlags
	var resource string
	var sensitiveOnly bool
	list := func(cmd *cobra.Command, _ []string) error {
		v, err := sf.view(cmd)
		if err != nil {
			return err
		}
		scopes := []*engine.ScopeInfo{}
		for _, s := range v.Scopes() {
			if (resource == "" || s.Resource == resource) && (!sensitiveOnly || s.Sensitive) {
				scopes = append(scopes, s)
			}
		}
		out := cmd.OutOrStdout()
		if sf.json {
			return writeJSONOut(out, map[string]any{"version": v.Version(), "default_scope": v.DefaultScope(), "count": len(scopes), "scopes": scopes})
		}
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SCOPE\tSENSITIVE\tINCLUDES\tDESCRIPTION")
		for _, s := range scopes {
			name := s.Name
			if s.Default {
				name += " (default)"
			}
			sens := ""
			if s.Sensitive {
				sens = "yes"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", name, sens, orDash(strings.Join(s.Includes, " ")), s.Description)
		}
		return tw.Flush()
	}

	cmd := &cobra.Command{
		Use:   "scopes",
		Short: "Show the scope catalog, one scope, or normalise a requested scope list",
		Long: `scopes reads the catalog as the server serves it on /v1/scopes:

  scopegate scopes [list] [--resource R] [--sensitive]   every scope, in file order
  scopegate scopes show NAME                             one scope: includes, included by, satisfied by
  scopegate scopes normalize "user:read user:write"      minimal equivalent set, over-broad and sensitive scopes

--json prints what the matching endpoint answers. normalize exits 3 when the
list names scopes the catalog lacks (a token naming them is denied); show
exits 2 for an unknown scope.`,
		Args: cobra.NoArgs,
		RunE: list,
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&sf.catalog, "catalog", "scopes.yaml", "scope catalog")
	pf.StringVar(&sf.bundle, "bundle", "", "read the catalog from this OPA bundle (directory or .tar.gz) instead")
	pf.BoolVar(&sf.json, "json", false, "print JSON")

	listCmd := &cobra.Command{Use: "list", Short: "List the catalog's scopes in file order", Args: cobra.NoArgs, RunE: list}
	for _, c := range []*cobra.Command{cmd, listCmd} {
		c.Flags().StringVar(&resource, "resource", "", "only the scopes of this resource")
		c.Flags().BoolVar(&sensitiveOnly, "sensitive", false, "only sensitive scopes")
	}

	showCmd := &cobra.Command{
		Use:   "show NAME",
		Short: "Show one scope: what it includes and implies, what includes and satisfies it",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			v, err := sf.view(cmd)
			if err != nil {
				return err
			}
			s, ok := v.Lookup(args[0])
			if !ok {
				msg := fmt.Sprintf("no scope %q in the catalog", args[0])
				if near := v.Suggest(args[0]); near != "" {
					msg += fmt.Sprintf(" (did you mean %q?)", near)
				}
				return &exitError{code: exitInvalid, err: errors.New(msg)}
			}
			out := cmd.OutOrStdout()
			if sf.json {
				return writeJSONOut(out, s)
			}
			var flags []string
			if s.Default {
				flags = append(flags, "default")
			}
			if s.Sensitive {
				flags = append(flags, "sensitive")
			}
			head := s.Name
			if len(flags) > 0 {
				head += " (" + strings.Join(flags, ", ") + ")"
			}
			fmt.Fprintf(out, "%s\n  %s\n", head, s.Description)
			for _, row := range [][2]string{
				{"resource", s.Resource},
				{"includes", strings.Join(s.Includes, ", ")},
				{"included by", strings.Join(s.IncludedBy, ", ")},
				{"implies", strings.Join(s.Implies, ", ")},
				{"satisfied by", strings.Join(s.SatisfiedBy, ", ")},
			} {
				fmt.Fprintf(out, "  %-13s %s\n", row[0]+":", orDash(row[1]))
			}
			return nil
		},
	}

	normalizeCmd := &cobra.Command{
		Use:   `normalize "SCOPE SCOPE ..."`,
		Short: "Reduce a requested scope list to its minimal equivalent and flag over-broad and sensitive scopes",
		Long: `normalize takes a requested scope list, as one space-separated string or as
several arguments, and prints the minimal equivalent set (a scope another
requested scope already grants is dropped), everything it grants, and what a
reviewer should question: unknown names, RESOURCE:manage requests, sensitive
scopes. It exits 3 when the list names scopes the catalog lacks.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			requested, err := request.ParseScopeString(strings.Join(args, " "))
			if err != nil {
				return &exitError{code: exitInvalid, err: err}
			}
			v, err := sf.view(cmd)
			if err != nil {
				return err
			}
			r := scopeset.Normalize(v, requested)
			out := cmd.OutOrStdout()
			if sf.json {
				if err := writeJSONOut(out, r); err != nil {
					return err
				}
			} else {
				printNormalized(out, r)
			}
			if len(r.Unknown) > 0 {
				return &exitError{code: exitDeny, err: fmt.Errorf("%d requested scope(s) not in the catalog", len(r.Unknown))}
			}
			return nil
		},
	}
	cmd.AddCommand(listCmd, showCmd, normalizeCmd)
	return cmd
}

func printNormalized(w io.Writer, r scopeset.Result) {
	row := func(label, v string) { fmt.Fprintf(w, "%-11s %s\n", label+":", orDash(v)) }
	row("requested", strings.Join(r.Requested, " "))
	row("minimal", strings.Join(r.Minimal, " "))
	expanded := strings.Join(r.Expanded, " ")
	if r.DefaultApplied {
		expanded += " (the default scope)"
	}
	row("grants", expanded)
	var parts []string
	for _, u := range r.Unknown {
		p := u.Scope
		if u.DidYouMean != "" {
			p += " (did you mean " + u.DidYouMean + "?)"
		}
		parts = append(parts, p)
	}
	row("unknown", strings.Join(parts, ", "))
	parts = nil
	for _, d := range r.Redundant {
		parts = append(parts, d.Scope+" (granted by "+strings.Join(d.ImpliedBy, ", ")+")")
	}
	row("redundant", strings.Join(parts, ", "))
	parts = nil
	for _, o := range r.OverBroad {
		parts = append(parts, o.Scope)
	}
	row("over-broad", strings.Join(parts, ", "))
	parts = nil
	for _, s := range r.Sensitive {
		p := s.Scope
		if len(s.Via) != 1 || s.Via[0] != s.Scope {
			p += " (via " + strings.Join(s.Via, ", ") + ")"
		}
		parts = append(parts, p)
	}
	row("sensitive", strings.Join(parts, ", "))
	fmt.Fprintln(w, "hints:")
	for _, h := range r.Hints {
		fmt.Fprintf(w, "  - %s\n", h)
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
