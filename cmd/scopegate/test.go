package main

import (
	"fmt"
	"io"
	"sort"

	"github.com/open-policy-agent/opa/v1/tester"
	"github.com/spf13/cobra"

	"github.com/scopegate/scopegate/internal/bundle"
	"github.com/scopegate/scopegate/internal/policytest"
	"github.com/scopegate/scopegate/internal/source"
)

func newTestCmd() *cobra.Command {
	var (
		catalogPath, policies, bundlePath string
		verbose, coverage                 bool
		threshold                         float64
	)
	cmd := &cobra.Command{
		Use:   "test",
		Short: "Run the policies' Rego unit tests (*_test.rego), like opa test",
		Long: `test runs the Rego tests with OPA's own tester against the catalog generated
from scopes.yaml, or against a built bundle with --bundle. -v lists every test
as opa test -v does; --coverage adds OPA's coverage report (per file and total).
It exits 1 when a test fails or coverage is under --threshold.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var src *source.Source
			var err error
			if bundlePath != "" {
				if cmd.Flags().Changed("catalog") || cmd.Flags().Changed("policies") {
					return fmt.Errorf("give --bundle or --catalog/--policies, not both")
				}
				src, err = bundle.LoadPath(bundlePath, bundle.LoadOptions{})
			} else {
				src, err = source.FromFiles(catalogPath, policiesFor(catalogPath, policies))
			}
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			if len(src.Tests) == 0 {
				return &exitError{code: 2, err: fmt.Errorf("no *_test.rego files to run")}
			}
			rep, err := policytest.RunWithOptions(cmd.Context(), src, policytest.Options{Coverage: coverage || threshold > 0, Trace: verbose})
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			out := cmd.OutOrStdout()
			ch := make(chan *tester.Result, len(rep.Results))
			for _, r := range rep.Results {
				ch <- r
			}
			close(ch)
			if err := (tester.PrettyReporter{Output: out, Verbose: verbose}).Report(ch); err != nil {
				return err
			}
			if rep.Coverage != nil {
				printCoverage(out, rep)
			}
			if n := rep.Failed(); n > 0 {
				return &exitError{code: 1, err: fmt.Errorf("%d of %d Rego tests failed", n, len(rep.Results))}
			}
			if threshold > 0 && rep.Coverage.Coverage < threshold {
				return &exitError{code: 1, err: fmt.Errorf("coverage %.2f%% is below the threshold %.2f%%", rep.Coverage.Coverage, threshold)}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&catalogPath, "catalog", "scopes.yaml", "scope catalog")
	f.StringVar(&policies, "policies", "", policiesHelp+", tests included")
	f.StringVar(&bundlePath, "bundle", "", "test a built bundle (directory or .tar.gz) instead")
	f.BoolVarP(&verbose, "verbose", "v", false, "list every test, and trace failures")
	f.BoolVar(&coverage, "coverage", false, "report which policy lines the tests evaluate")
	f.Float64Var(&threshold, "threshold", 0, "fail when coverage (percent) is below this (implies --coverage)")
	return cmd
}

func printCoverage(w io.Writer, rep *policytest.Report) {
	c := rep.Coverage
	files := make([]string, 0, len(c.Files))
	for f := range c.Files {
		files = append(files, f)
	}
	sort.Strings(files)
	fmt.Fprintln(w, "\nCoverage (lines evaluated by the tests):")
	for _, f := range files {
		fr := c.Files[f]
		fmt.Fprintf(w, "  %-40s %6.2f%%  (%d covered, %d not covered)", f, fr.Coverage, fr.CoveredLines, fr.NotCoveredLines)
		if len(fr.NotCovered) > 0 {
			fmt.Fprint(w, "  not covered:")
			last := ""
			for _, r := range fr.NotCovered {
				rows := fmt.Sprint(r.Start.Row)
				if r.End.Row != r.Start.Row {
					rows += fmt.Sprintf("-%d", r.End.Row)
				}
				if rows != last {
					fmt.Fprint(w, " "+rows)
				}
				last = rows
			}
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "Coverage: %.2f%% (%d of %d lines)\n", c.Coverage, c.CoveredLines, c.CoveredLines+c.NotCoveredLines)
}
