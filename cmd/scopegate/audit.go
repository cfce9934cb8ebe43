package main

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/scopegate/scopegate/internal/decisionlog"
)

func newAuditCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Verify, query and summarize the decision log",
		Long: `audit reads the decision log that serve writes: the file given by
--decision-log (default decisions.log) and the rotated files next to it, in
chain order.

  scopegate audit verify    check the hash chain; exit 1 at the first bad record
  scopegate audit query     list decisions by subject, client, scope, reason, outcome, time
  scopegate audit stats     count decisions per reason, subject or scope, over time
  scopegate audit advise    least privilege: per client, scopes granted vs scopes needed`,
	}
	cmd.AddCommand(newAuditVerifyCmd(), newAuditQueryCmd(), newAuditStatsCmd(), newAuditAdviseCmd())
	return cmd
}

func addLogFlag(f *pflag.FlagSet, path *string) {
	f.StringVar(path, "decision-log", "decisions.log", "the active decision-log file; rotated files next to it are read too (or give it as the argument)")
}

// logFiles lists the log's files, oldest first. The log is the command's
// one argument, as people type it (audit verify decisions.log), or
// --decision-log.
func logFiles(cmd *cobra.Command, args []string, path string) ([]string, error) {
	if len(args) > 0 {
		if cmd.Flags().Changed("decision-log") && args[0] != path {
			return nil, usageError(fmt.Errorf("give the log as the argument or as --decision-log, not both (%s, %s)", args[0], path))
		}
		path = args[0]
	}
	files, err := decisionlog.Files(path)
	if err != nil {
		return nil, &exitError{code: 2, err: err}
	}
	if len(files) == 0 {
		return nil, &exitError{code: 2, err: fmt.Errorf("no decision log at %s (nor rotated files next to it)", path)}
	}
	return files, nil
}

func newAuditVerifyCmd() *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "verify [LOG]",
		Short: "Check the hash chain; exit 0 if intact, 1 at the first edited, deleted or reordered record",
		Long: `verify recomputes the SHA-256 of every record and checks that each record's
prev_hash is the previous record's hash, across rotated files. It names the
first bad record as file:line with what is wrong:

  hash_mismatch   the record was edited
  broken_link     a record before it was deleted, inserted or reordered
  truncated       the last line was cut short (a crash mid-write)
  malformed       the line is not a record

Exit status: 0 intact, 1 broken, 2 the log could not be read.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			files, err := logFiles(cmd, args, path)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			rep, err := decisionlog.Verify(files)
			if ce, ok := errors.AsType[*decisionlog.ChainError](err); ok {
				fmt.Fprintf(out, "BROKEN: %s:%d: %s\n", ce.File, ce.Line, ce.Kind)
				fmt.Fprintf(out, "%s verified before it\n", plural(rep.Records, "record"))
				return &exitError{code: 1, err: ce}
			}
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			fmt.Fprintf(out, "ok: %s in %s, hash chain intact\n", plural(rep.Records, "record"), plural(rep.Files, "file"))
			if rep.Records > 0 {
				if rep.StartsAtGenesis() {
					fmt.Fprintln(out, "first record: starts the chain (nothing older is missing)")
				} else {
					fmt.Fprintf(out, "first record: continues from %s (older files were removed, e.g. by retention)\n", rep.FirstPrevHash)
				}
				fmt.Fprintf(out, "last hash: %s\n", rep.LastHash)
			}
			return nil
		},
	}
	addLogFlag(cmd.Flags(), &path)
	return cmd
}

// filterFlags are the record filters shared by query and stats.
type filterFlags struct {
	subject, client, scope, reason string
	allow, deny                    bool
	from, to                       string
}

func (ff *filterFlags) register(f *pflag.FlagSet) {
	f.StringVar(&ff.subject, "subject", "", "only decisions for this subject")
	f.StringVar(&ff.client, "client", "", "only decisions for this client_id")
	f.StringVar(&ff.scope, "scope", "", "only decisions whose token granted this scope")
	f.StringVar(&ff.reason, "reason", "", "only decisions with this reason code (allowed, missing_scope, ...)")
	f.BoolVar(&ff.allow, "allow", false, "only allowed decisions")
	f.BoolVar(&ff.deny, "deny", false, "only denied decisions")
	f.StringVar(&ff.from, "from", "", "only decisions at or after this time: 2026-11-23, 2026-11-23T18:00:00Z, or an age such as 24h or 7d")
	f.StringVar(&ff.to, "to", "", "only decisions before this time (same forms as --from)")
}

func (ff *filterFlags) filter(now time.Time) (decisionlog.Filter, error) {
	f := decisionlog.Filter{Subject: ff.subject, ClientID: ff.client, Scope: ff.scope, Reason: ff.reason}
	switch {
	case ff.allow && ff.deny:
		return f, usageError(errors.New("give --allow or --deny, not both"))
	case ff.allow, ff.deny:
		allow := ff.allow
		f.Allow = &allow
	}
	var err error
	if f.From, err = parseTime(ff.from, now); err != nil {
		return f, usageError(fmt.Errorf("--from: %w", err))
	}
	if f.To, err = parseTime(ff.to, now); err != nil {
		return f, usageError(fmt.Errorf("--to: %w", err))
	}
	return f, nil
}

// parseTime reads an RFC 3339 time, a UTC date or minute, or an age (24h,
// 7d) counted back from now. "" is the zero time.
func parseTime(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			return t, nil
		}
	}
	var age dayDuration
	if err := age.Set(s); err == nil {
		return now.Add(-time.Duration(age)), nil
	}
	return time.Time{}, fmt.Errorf("%q: want 2026-11-23, 2026-11-23T18:00:00Z, or an age such as 24h or 7d", s)
}

func checkOutput(output string) error {
	if output != "table" && output != "json" {
		return usageError(fmt.Errorf("--output %q: want table or json", output))
	}
	return nil
}

func newAuditQueryCmd() *cobra.Command {
	var (
		path   string
		ff     filterFlags
		limit  int
		output string
	)
	cmd := &cobra.Command{
		Use:   "query [LOG]",
		Short: "List the decisions that match the filters, oldest first",
		Long: `query prints the matching decisions, oldest first: a table, or with
--output json one JSON record per line (the full record, as logged, for jq).
query reads records without checking the chain; run verify for that.`,
		Example: `  scopegate audit query --deny --subject app:translator-bot --from 24h
  scopegate audit query --scope project:manage --output json | jq .result.explain`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			f, err := ff.filter(time.Now())
			if err != nil {
				return err
			}
			f.Limit = limit
			files, err := logFiles(cmd, args, path)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if output == "json" {
				enc := json.NewEncoder(out)
				enc.SetEscapeHTML(false)
				for ev, err := range decisionlog.Query(files, f) {
					if err != nil {
						return &exitError{code: 2, err: err}
					}
					if err := enc.Encode(ev); err != nil {
						return err
					}
				}
				return nil
			}
			out = termSafe(out) // subjects and client ids are what callers sent
			tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "TIME (UTC)\tSUBJECT\tCLIENT\tACTION\tALLOW\tREASON\tDECISION_ID")
			n := 0
			for ev, err := range decisionlog.Query(files, f) {
				if err != nil {
					tw.Flush()
					return &exitError{code: 2, err: err}
				}
				n++
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%t\t%s\t%s\n", ev.Timestamp.UTC().Format("2006-01-02 15:04:05"),
					dash(ev.Subject), dash(ev.ClientID), dash(action(ev)), ev.Allow, ev.Reason, ev.DecisionID)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			fmt.Fprintln(out, plural(n, "decision"))
			return nil
		},
	}
	f := cmd.Flags()
	addLogFlag(f, &path)
	ff.register(f)
	f.IntVar(&limit, "limit", 0, "at most this many decisions (0: all)")
	f.StringVarP(&output, "output", "o", "table", "table, or json (one record per line)")
	return cmd
}

// action is what a record's input asked for: the action, the route, or,
// for a rejected request, the error code.
func action(ev decisionlog.Event) string {
	in, _ := ev.Input.(map[string]any)
	if a, ok := in["action"].(string); ok {
		return a
	}
	m, _ := in["method"].(string)
	p, _ := in["path"].(string)
	if m != "" || p != "" {
		return strings.TrimSpace(m + " " + p)
	}
	if e, ok := in["error"].(map[string]any); ok {
		if c, ok := e["code"].(string); ok {
			return "(" + c + ")"
		}
	}
	return ""
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// statsJSON is audit stats --output json.
type statsJSON struct {
	Records int            `json:"records"`
	Allowed int            `json:"allowed"`
	Denied  int            `json:"denied"`
	By      string         `json:"by"`
	Counts  map[string]int `json:"counts"`
	Bucket  string         `json:"bucket,omitempty"`
	Buckets []bucketJSON   `json:"buckets,omitempty"`
}

type bucketJSON struct {
	Start   time.Time      `json:"start"`
	Allowed int            `json:"allowed"`
	Denied  int            `json:"denied"`
	Counts  map[string]int `json:"counts"`
}

func newAuditStatsCmd() *cobra.Command {
	var (
		path   string
		ff     filterFlags
		by     string
		bucket time.Duration
		output string
	)
	cmd := &cobra.Command{
		Use:   "stats [LOG]",
		Short: "Count decisions per reason, subject or scope, in total and over time",
		Long: `stats counts the matching decisions per reason code, subject or granted
scope (--by), in total and, with --bucket, per time bucket (aligned on UTC
midnight for sizes that divide a day). A decision counts once for each scope
its token granted.`,
		Example: `  scopegate audit stats --by reason
  scopegate audit stats --by scope --deny --bucket 1h --from 24h`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			if by != "reason" && by != "subject" && by != "scope" {
				return usageError(fmt.Errorf("--by %q: want reason, subject or scope", by))
			}
			if bucket < 0 {
				return usageError(errors.New("--bucket must not be negative"))
			}
			f, err := ff.filter(time.Now())
			if err != nil {
				return err
			}
			files, err := logFiles(cmd, args, path)
			if err != nil {
				return err
			}
			sum, err := decisionlog.Stats(files, f, bucket)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			pick := func(reason, subject, scope map[string]int) map[string]int {
				switch by {
				case "subject":
					return subject
				case "scope":
					return scope
				}
				return reason
			}
			out := cmd.OutOrStdout()
			if output == "json" {
				js := statsJSON{Records: sum.Records, Allowed: sum.Allowed, Denied: sum.Denied, By: by,
					Counts: pick(sum.ByReason, sum.BySubject, sum.ByScope)}
				if bucket > 0 {
					js.Bucket = bucket.String()
				}
				for _, b := range sum.Buckets {
					js.Buckets = append(js.Buckets, bucketJSON{Start: b.Start, Allowed: b.Allowed, Denied: b.Denied,
						Counts: pick(b.ByReason, b.BySubject, b.ByScope)})
				}
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				enc.SetEscapeHTML(false)
				return enc.Encode(js)
			}
			out = termSafe(out) // subjects are what callers sent
			fmt.Fprintf(out, "%s: %d allowed, %d denied\n\n", plural(sum.Records, "decision"), sum.Allowed, sum.Denied)
			tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
			head := strings.ToUpper(by)
			if bucket == 0 {
				fmt.Fprintf(tw, "%s\tDECISIONS\tSHARE\n", head)
				counts := pick(sum.ByReason, sum.BySubject, sum.ByScope)
				for _, k := range byCount(counts) {
					fmt.Fprintf(tw, "%s\t%d\t%.1f%%\n", dash(k), counts[k], 100*float64(counts[k])/float64(max(sum.Records, 1)))
				}
				return tw.Flush()
			}
			fmt.Fprintf(tw, "FROM (UTC)\t%s\tDECISIONS\n", head)
			layout := "2006-01-02 15:04"
			if bucket%time.Minute != 0 {
				layout = "2006-01-02 15:04:05"
			}
			for _, b := range sum.Buckets {
				counts := pick(b.ByReason, b.BySubject, b.ByScope)
				for _, k := range byCount(counts) {
					fmt.Fprintf(tw, "%s\t%s\t%d\n", b.Start.UTC().Format(layout), dash(k), counts[k])
				}
			}
			return tw.Flush()
		},
	}
	f := cmd.Flags()
	addLogFlag(f, &path)
	ff.register(f)
	f.StringVar(&by, "by", "reason", "count per reason, subject or scope")
	f.DurationVar(&bucket, "bucket", 0, "also count per time bucket of this size, e.g. 1h (0: totals only)")
	f.StringVarP(&output, "output", "o", "table", "table or json")
	return cmd
}

// byCount sorts keys by count, highest first, then by name.
func byCount(counts map[string]int) []string {
	keys := slices.Collect(maps.Keys(counts))
	slices.SortFunc(keys, func(a, b string) int {
		if c := cmp.Compare(counts[b], counts[a]); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	return keys
}
