package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/open-policy-agent/opa/v1/util"
	"github.com/spf13/cobra"

	"github.com/scopegate/scopegate/internal/advisor"
	"github.com/scopegate/scopegate/internal/decisionlog"
	"github.com/scopegate/scopegate/internal/engine"
)

// newAuditAdviseCmd is `scopegate audit advise`: the least-privilege
// advisor over the decision log (internal/advisor).
func newAuditAdviseCmd() *cobra.Command {
	var (
		path, catalogPath string
		client            string
		from, to          string
		output            string
	)
	cmd := &cobra.Command{
		Use:   "advise [LOG]",
		Short: "Least privilege: per client, the scopes granted vs the scopes its allowed decisions needed",
		Long: `advise reads the decisions of a period and, for each client_id, compares
the scopes its tokens were granted with the scopes its allowed decisions
actually needed. For every allowed decision it takes the narrowest scope that
would have satisfied it, then drops the scopes others imply: the result is
the smallest scope request under which every allowed decision of the period
would still have been allowed. It also lists granted scopes that were never
used, over-broad grants (such as RESOURCE:manage used only to read) and
sensitive scopes granted but never needed. Denied decisions do not widen the
recommendation; they are listed with the scope that was missing.

The catalog (--catalog: scopes.yaml, or a bundle's data.json) says which
scope implies which. Decisions without a client_id are counted but not
attributed to any client.`,
		Example: `  scopegate audit advise --from 30d
  scopegate audit advise --client translator-bot -o json | jq .clients[0].recommended`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			now := time.Now()
			fromT, err := parseTime(from, now)
			if err != nil {
				return usageError(fmt.Errorf("--from: %w", err))
			}
			toT, err := parseTime(to, now)
			if err != nil {
				return usageError(fmt.Errorf("--to: %w", err))
			}
			cat, err := loadAdvisorCatalog(catalogPath)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			files, err := logFiles(cmd, args, path)
			if err != nil {
				return err
			}
			rep, err := advisor.Analyze(cat, fromT, toT, decisionlog.Query(files, decisionlog.Filter{ClientID: client, From: fromT, To: toT}))
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			out := cmd.OutOrStdout()
			if output == "json" {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				enc.SetEscapeHTML(false)
				return enc.Encode(rep)
			}
			return printAdvice(termSafe(out), rep) // client ids and actions are what callers sent
		},
	}
	f := cmd.Flags()
	addLogFlag(f, &path)
	f.StringVar(&catalogPath, "catalog", "scopes.yaml", "scope catalog: scopes.yaml, or a bundle's data.json")
	f.StringVar(&client, "client", "", "only this client_id")
	f.StringVar(&from, "from", "", "only decisions at or after this time: 2026-11-23, 2026-11-23T18:00:00Z, or an age such as 24h or 30d")
	f.StringVar(&to, "to", "", "only decisions before this time (same forms as --from)")
	f.StringVarP(&output, "output", "o", "table", "table or json")
	return cmd
}

// loadAdvisorCatalog reads scopes.yaml, or the data.json of a bundle
// (data.scopegate.catalog as gen writes it).
func loadAdvisorCatalog(path string) (*engine.CatalogView, error) {
	if !strings.HasSuffix(path, ".json") {
		return advisor.CatalogFile(path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read catalog data: %w", err)
	}
	var data map[string]any
	if err := util.UnmarshalJSON(b, &data); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	v, err := engine.NewCatalogView(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return v, nil
}

func printAdvice(out io.Writer, r advisor.Report) error {
	if r.Records == 0 {
		fmt.Fprintln(out, "no decisions in this period")
		return nil
	}
	ts := func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05") }
	fmt.Fprintf(out, "%d decisions from %s to %s UTC; %d clients", r.Records, ts(r.FirstSeen), ts(r.LastSeen), len(r.Clients))
	if r.Unattributed > 0 {
		fmt.Fprintf(out, "; %d decisions without a client_id not attributed", r.Unattributed)
	}
	fmt.Fprintln(out)
	if len(r.Clients) == 0 {
		return nil
	}
	fmt.Fprintln(out)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CLIENT\tALLOWED\tDENIED\tGRANTED\tNEEDED (REQUEST THIS)\tUNUSED\tOVER-BROAD\tVERDICT")
	for _, c := range r.Clients {
		var broad []string
		for _, o := range c.OverBroad {
			broad = append(broad, o.Scope)
		}
		verdict := "narrow it"
		if c.LeastPrivilege {
			verdict = "least privilege"
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s\t%s\t%s\n", c.ClientID, c.Allowed, c.Denied,
			spaced(c.Granted), spaced(c.Needed), spaced(c.Unused), spaced(broad), verdict)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, c := range r.Clients {
		fmt.Fprintf(out, "\n%s:\n", c.ClientID)
		for _, f := range c.Findings {
			fmt.Fprintf(out, "  - %s\n", f)
		}
	}
	return nil
}

func spaced(xs []string) string {
	if len(xs) == 0 {
		return "-"
	}
	return strings.Join(xs, " ")
}
