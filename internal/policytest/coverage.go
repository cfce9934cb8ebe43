package policytest

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/cover"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/tester"

	"github.com/scopegate/scopegate/internal/source"
)

// Options tune RunWithOptions.
type Options struct {
	// Coverage records which policy lines the tests evaluated, as
	// `opa test --coverage` does.
	Coverage bool
	// Trace keeps each test's evaluation trace, so a failure can be shown
	// the way `opa test -v` shows it.
	Trace bool
	// Timeout bounds each test; zero means OPA's default (5s).
	Timeout time.Duration
}

// Report is what RunWithOptions found.
type Report struct {
	// Results, sorted by package and name.
	Results []*tester.Result
	// Coverage is OPA's coverage report over every module (tests included,
	// like `opa test --coverage`); nil unless Options.Coverage.
	Coverage *cover.Report
}

// Failed counts the results that failed or errored.
func (r *Report) Failed() int {
	n := 0
	for _, res := range r.Results {
		if !res.Pass() && !res.Skip {
			n++
		}
	}
	return n
}

// RunWithOptions is Run with coverage and tracing options.
func RunWithOptions(ctx context.Context, src *source.Source, opts Options) (*Report, error) {
	mods, err := src.Parse(true)
	if err != nil {
		return nil, err
	}
	modules := make(map[string]*ast.Module, len(mods))
	for _, m := range mods {
		modules[m.Name] = m.Parsed
	}
	runner := tester.NewRunner().
		SetStore(inmem.NewFromObject(src.Data)).
		SetModules(modules).
		SetDefaultRegoVersion(ast.RegoV1).
		RaiseBuiltinErrors(true).
		EnableTracing(opts.Trace)
	if opts.Timeout > 0 {
		runner = runner.SetTimeout(opts.Timeout)
	}
	var cov *cover.Cover
	if opts.Coverage {
		cov = cover.New()
		runner = runner.SetCoverageQueryTracer(cov)
	}
	ch, err := runner.RunTests(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("run rego tests: %w", err)
	}
	rep := &Report{}
	for r := range ch {
		rep.Results = append(rep.Results, r)
	}
	sort.Slice(rep.Results, func(i, j int) bool {
		a, b := rep.Results[i], rep.Results[j]
		if a.Package != b.Package {
			return a.Package < b.Package
		}
		return a.Name < b.Name
	})
	if cov != nil {
		c := cov.Report(modules)
		rep.Coverage = &c
	}
	return rep, nil
}
