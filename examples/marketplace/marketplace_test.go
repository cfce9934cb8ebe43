// Package marketplace_test checks the marketplace example: a second catalog
// and its policies, loaded and decided by the same engine as the reference
// catalog, with nothing in the engine knowing which is which.
package marketplace_test

import (
	"bytes"
	"context"
	"os"
	"slices"
	"testing"

	"github.com/scopegate/scopegate/internal/engine"
	"github.com/scopegate/scopegate/internal/policycheck"
	"github.com/scopegate/scopegate/internal/policytest"
	"github.com/scopegate/scopegate/internal/scopeset"
	"github.com/scopegate/scopegate/internal/source"
)

func load(t *testing.T) (*source.Source, *engine.Engine) {
	t.Helper()
	src, err := source.FromFiles("scopes.yaml", "policies")
	if err != nil {
		t.Fatal(err)
	}
	eng, err := engine.New(context.Background(), src)
	if err != nil {
		t.Fatal(err)
	}
	return src, eng
}

// TestRegoTests runs policies/*_test.rego with OPA's tester; each Rego test
// is a subtest.
func TestRegoTests(t *testing.T) {
	src, _ := load(t)
	results, err := policytest.Run(context.Background(), src)
	if err != nil {
		t.Fatal(err)
	}
	if len(results) < 15 {
		t.Fatalf("ran %d Rego tests, expected at least 15", len(results))
	}
	for _, r := range results {
		t.Run(r.Package+"."+r.Name, func(t *testing.T) {
			if !r.Pass() {
				t.Errorf("%s", r.String())
			}
		})
	}
}

func TestCatalog(t *testing.T) {
	src, eng := load(t)
	v, err := eng.Catalog()
	if err != nil {
		t.Fatal(err)
	}
	if v.Len() < 15 || v.DefaultScope() != "public" {
		t.Fatalf("%d scopes, default %q", v.Len(), v.DefaultScope())
	}
	for _, s := range []string{"files:download", "licenses:read", "sales:read", "sales:refund", "payment_webhooks:manage", "payouts:read", "payouts:manage"} {
		if info, ok := v.Lookup(s); !ok || !info.Sensitive {
			t.Errorf("%s should be a sensitive scope", s)
		}
	}
	if problems, err := policycheck.Check(context.Background(), src); err != nil || len(problems) > 0 {
		t.Fatalf("policies name what the catalog lacks: %v %v", err, problems)
	}
}

func TestDecisions(t *testing.T) {
	_, eng := load(t)
	for _, tc := range []struct {
		name   string
		in     engine.Input
		reason string
	}{
		{"license server", engine.Input{GrantedScopes: []string{"licenses:verify"}, Method: "POST", Path: "/licenses/verify"}, "allowed"},
		{"license server lists buyers", engine.Input{GrantedScopes: []string{"licenses:verify"}, Method: "GET", Path: "/licenses"}, "missing_scope"},
		{"storefront without scopes", engine.Input{GrantedScopes: []string{}, Method: "GET", Path: "/store/products"}, "allowed"},
		{"reference scope", engine.Input{GrantedScopes: []string{"user:read"}, Action: "public"}, "unknown_scope"},
		{"reference action", engine.Input{GrantedScopes: []string{"products:manage"}, Action: "project.launch"}, "unknown_action"},
	} {
		d, err := eng.DecideInput(context.Background(), tc.in, engine.Options{})
		if err != nil || d.Reason != tc.reason {
			t.Errorf("%s: reason %q (%v), want %s; explain %q", tc.name, d.Reason, err, tc.reason, d.Explain)
		}
	}
}

func TestNormalize(t *testing.T) {
	_, eng := load(t)
	v, _ := eng.Catalog()
	r := scopeset.Normalize(v, []string{"payouts:read", "payouts:manage", "licenses:verify", "licences:read"})
	if !slices.Equal(r.Minimal, []string{"licenses:verify", "payouts:manage"}) || len(r.OverBroad) != 1 ||
		len(r.Unknown) != 1 || r.Unknown[0].DidYouMean != "licenses:read" || len(r.Sensitive) != 2 {
		t.Fatalf("got %+v", r)
	}
}

// TestGenericPolicy: the marketplace decides with the same generic
// authz.rego as the reference catalog (only the catalog and actions.rego
// differ), so its decisions keep the /v1/decide contract. Copy
// policies/authz.rego here again after changing it.
func TestGenericPolicy(t *testing.T) {
	for _, f := range []string{"authz.rego", "actions_test.rego"} {
		mine, err := os.ReadFile("policies/" + f)
		if err != nil {
			t.Fatal(err)
		}
		ref, err := os.ReadFile("../../policies/" + f)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(mine, ref) {
			t.Errorf("examples/marketplace/policies/%s differs from policies/%s: cp policies/%s examples/marketplace/policies/", f, f, f)
		}
	}
}
