// Package policytest runs a policy source's Rego unit tests (*_test.rego)
// with OPA's own tester, the same runner `opa test` uses.
package policytest

import (
	"context"
	"fmt"
	"sort"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/tester"

	"github.com/scopegate/scopegate/internal/source"
)

// Run compiles src's modules and tests together and runs every test rule.
// Results are sorted by package and name so reports are stable.
func Run(ctx context.Context, src *source.Source) ([]*tester.Result, error) {
	modules := map[string]*ast.Module{}
	for _, set := range []map[string]string{src.Modules, src.Tests} {
		for name, text := range set {
			m, err := ast.ParseModuleWithOpts(name, text, ast.ParserOptions{RegoVersion: ast.RegoV1})
			if err != nil {
				return nil, fmt.Errorf("parse %s: %w", name, err)
			}
			modules[name] = m
		}
	}
	store := inmem.NewFromObject(src.Data)
	ch, err := tester.NewRunner().
		SetStore(store).
		SetModules(modules).
		SetDefaultRegoVersion(ast.RegoV1).
		RaiseBuiltinErrors(true).
		RunTests(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("run rego tests: %w", err)
	}
	var results []*tester.Result
	for r := range ch {
		results = append(results, r)
	}
	sort.Slice(results, func(i, j int) bool {
		if results[i].Package != results[j].Package {
			return results[i].Package < results[j].Package
		}
		return results[i].Name < results[j].Name
	})
	return results, nil
}
