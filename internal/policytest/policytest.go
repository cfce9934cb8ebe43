// Package policytest runs a policy source's Rego unit tests (*_test.rego)
// with OPA's own tester, the same runner `opa test` uses.
package policytest

import (
	"context"

	"github.com/open-policy-agent/opa/v1/tester"

	"github.com/scopegate/scopegate/internal/source"
)

// Run compiles src's modules and tests together and runs every test rule.
// Results are sorted by package and name so reports are stable.
func Run(ctx context.Context, src *source.Source) ([]*tester.Result, error) {
	rep, err := RunWithOptions(ctx, src, Options{})
	if err != nil {
		return nil, err
	}
	return rep.Results, nil
}
