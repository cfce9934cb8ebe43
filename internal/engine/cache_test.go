package engine

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/scopegate/scopegate/internal/source"
)

func TestCacheability(t *testing.T) {
	for _, tc := range []struct {
		name, module, why string
	}{
		{"keyed fields only", "package p\n\nx if input.action == input.granted_scopes[0]\n\ny := input.method\n\nz := data.q[input.path]\n", ""},
		{"subject", "package p\n\nx if input.subject == \"a\"\n", "reads input.subject"},
		{"nested in data ref", "package p\n\nx := data.q[input.context.k]\n", "reads input.context"},
		{"whole input", "package p\n\nx := input\n", "the whole input"},
		{"computed key", "package p\n\nx := input[k] if some k in [\"action\"]\n", "computed key"},
		{"import alias", "package p\n\nimport input.resource as r\n\nx := r.id\n", "reads input.resource"},
		{"time", "package p\n\nx := time.now_ns()\n", "non-deterministic builtin time.now_ns"},
		{"rand in body", "package p\n\nx if { rand.intn(\"k\", 10) > 5 }\n", "non-deterministic builtin rand.intn"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := ast.MustParseModuleWithOpts(tc.module, ast.ParserOptions{RegoVersion: ast.RegoV1})
			why := cacheability([]*ast.Module{m})
			if tc.why == "" && why != "" || !strings.Contains(why, tc.why) {
				t.Fatalf("cacheability = %q, want %q", why, tc.why)
			}
		})
	}
}

func TestCacheKeyDistinguishes(t *testing.T) {
	inputs := []Input{
		{Action: "a"},
		{Method: "a"},
		{Path: "a"},
		{Action: "a", GrantedScopes: []string{}},
		{Action: "a", GrantedScopes: []string{"x"}},
		{Action: "a", GrantedScopes: []string{"x y"}},
		{Action: "a", GrantedScopes: []string{"x", "y"}},
		{Action: "a", GrantedScopes: []string{"x"}, RequestedScopes: []string{}},
		{Action: "a", RequestedScopes: []string{"x"}},
		{Action: "a1:", Method: ""},
		{Action: "a", Method: "1:"},
	}
	seen := map[string]int{}
	for i, in := range inputs {
		k := cacheKey(in)
		if j, dup := seen[k]; dup {
			t.Errorf("inputs %d and %d share key %q", j, i, k)
		}
		seen[k] = i
	}
	// Scope order does not matter: the policy treats scopes as a set.
	if cacheKey(Input{Action: "a", GrantedScopes: []string{"x", "y"}}) != cacheKey(Input{Action: "a", GrantedScopes: []string{"y", "x"}}) {
		t.Error("scope order changes the key")
	}
}

func TestCachedDecisionsMatchEvaluated(t *testing.T) {
	src, err := source.FromFiles("../../scopes.yaml", "../../policies")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cached, err := New(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	if st := cached.CacheStats(); !st.Enabled {
		t.Fatalf("repo policy not cacheable: %s", st.Disabled)
	}
	plain, err := New(ctx, src, WithCacheSize(0))
	if err != nil {
		t.Fatal(err)
	}
	inputs := []Input{
		{GrantedScopes: []string{"project:write", "user:read"}, Action: "project:launch"},
		{GrantedScopes: []string{"user:read", "project:write"}, Action: "project:launch"},
		{GrantedScopes: []string{"project:manage"}, Method: "POST", Path: "/projects/1/launch"},
		{GrantedScopes: []string{"project:manage"}, Method: "POST", Path: "/projects/2/launch"},
		{GrantedScopes: []string{}, Action: "user:read"},
		{GrantedScopes: []string{"nope:x"}, Action: "user:read"},
	}
	for round := range 3 {
		for i, in := range inputs {
			want, err1 := plain.DecideInput(ctx, in, Options{})
			got, err2 := cached.DecideInput(ctx, in, Options{})
			if err1 != nil || err2 != nil || !reflect.DeepEqual(got, want) {
				t.Fatalf("round %d input %d: cached %+v (%v) != evaluated %+v (%v)", round, i, got, err2, want, err1)
			}
		}
	}
	st := cached.CacheStats()
	// Inputs 0 and 1 share a key: 5 distinct questions, all later ones hit.
	if st.Misses != 5 || st.Hits != 13 {
		t.Fatalf("hits %d misses %d, want 13 and 5", st.Hits, st.Misses)
	}
}

func TestCacheDisabledForContextPolicies(t *testing.T) {
	src, err := source.FromFiles("../../scopes.yaml", "../../policies")
	if err != nil {
		t.Fatal(err)
	}
	src.Modules["owner.rego"] = "package scopegate.extra\n\nowner_only if input.resource.owner == input.subject\n"
	e, err := New(context.Background(), src)
	if err != nil {
		t.Fatal(err)
	}
	if st := e.CacheStats(); st.Enabled || !strings.Contains(st.Disabled, "owner.rego:3") {
		t.Fatalf("cache stats %+v", st)
	}
}

func TestCacheIsBounded(t *testing.T) {
	c := newDecisionCache(3)
	for i := range 100 {
		c.put(string(rune('a'+i%26))+strings.Repeat("x", i), Decision{})
	}
	if n := len(c.young) + len(c.old); n > 6 {
		t.Fatalf("cache holds %d entries, bound is 6", n)
	}
	c.put("keep", Decision{Reason: "r"})
	if d, ok := c.get("keep"); !ok || d.Reason != "r" {
		t.Fatal("newest entry lost")
	}
}
