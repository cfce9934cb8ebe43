package policytest_test

import (
	"context"
	"testing"

	"github.com/scopegate/scopegate/internal/policytest"
	"github.com/scopegate/scopegate/internal/source"
)

// TestRepoPolicies runs the Rego unit tests in policies/ against the catalog
// generated from the repo's scopes.yaml: each Rego test is a Go subtest.
func TestRepoPolicies(t *testing.T) {
	src, err := source.FromFiles("../../scopes.yaml", "../../policies")
	if err != nil {
		t.Fatal(err)
	}
	if len(src.Tests) == 0 {
		t.Fatal("policies/ has no *_test.rego files")
	}
	results, err := policytest.Run(context.Background(), src)
	if err != nil {
		t.Fatal(err)
	}
	if len(results) < 20 {
		t.Fatalf("ran %d Rego tests, expected at least 20", len(results))
	}
	for _, r := range results {
		t.Run(r.Package+"."+r.Name, func(t *testing.T) {
			if !r.Pass() {
				t.Errorf("%s", r.String())
			}
		})
	}
}

func TestFailingRegoTestIsReported(t *testing.T) {
	src, err := source.FromFiles("../../scopes.yaml", "../../policies")
	if err != nil {
		t.Fatal(err)
	}
	src.Tests = map[string]string{"broken_test.rego": "package x_test\n\ntest_wrong if data.scopegate.authz.decision.allow with input as {\"granted_scopes\": [], \"action\": \"project:launch\"}\n"}
	results, err := policytest.Run(context.Background(), src)
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != 1 || results[0].Pass() {
		t.Fatalf("want one failing result, got %v", results)
	}
}
