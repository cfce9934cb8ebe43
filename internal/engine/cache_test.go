package engine

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/scopegate/scopegate/internal/policyvariant"
	"github.com/scopegate/scopegate/internal/source"
)

func TestCacheability(t *testing.T) {
	for _, tc := range []struct {
		name, module, why string
	}{
		{"keyed fields only", "package p\n\nx if input.action == input.granted_scopes[0]\n\ny := input.method\n\nz := data.q[input.path]\n", ""},
		{"subject", "package p\n\nx if input.subject == \"a\"\n", "=subject"},
		{"nested in data ref", "package p\n\nx := data.q[input.context.k]\n", "=context.k"},
		{"owner check", "package p\n\nx if input.resource.owner == input.subject\n\ny := input.resource[k] if some k in [\"id\"]\n", "=resource subject"},
		{"whole input", "package p\n\nx := input\n", "the whole input"},
		{"computed key", "package p\n\nx := input[k] if some k in [\"action\"]\n", "computed key"},
		{"import alias", "package p\n\nimport input.resource as r\n\nx := r.id\n", "=resource"},
		{"time", "package p\n\nx := time.now_ns()\n", "non-deterministic builtin time.now_ns"},
		{"rand in body", "package p\n\nx if { rand.intn(\"k\", 10) > 5 }\n", "non-deterministic builtin rand.intn"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := ast.MustParseModuleWithOpts(tc.module, ast.ParserOptions{RegoVersion: ast.RegoV1})
			why, fields := cacheability([]*ast.Module{m})
			got := why
			if why == "" && len(fields) > 0 {
				got = "=" + strings.Join(fieldNames(fields), " ")
			}
			if tc.why == "" && got != "" || !strings.Contains(got, tc.why) {
				t.Fatalf("cacheability = %q, want %q", got, tc.why)
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
	cached, plain := cachedAndPlain(t, src)
	if st := cached.CacheStats(); !st.Enabled {
		t.Fatalf("repo policy not cacheable: %s", st.Disabled)
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
	// Inputs 0 and 1 share a key, and so do 2 and 3 (the same route, another
	// id): 3 distinct cacheable questions, all later ones hit; the unknown
	// scope (input 5) is never cached.
	if st.Misses != 6 || st.Hits != 12 || st.Skipped != 3 || !st.RouteKeys {
		t.Fatalf("hits %d misses %d skipped %d route keys %v (%s), want 12, 6 and 3 on route keys", st.Hits, st.Misses, st.Skipped, st.RouteKeys, st.RouteNote)
	}
}

// TestCacheKeyedOnTheFieldsAnABACPolicyReads: a policy that reads
// resource.owner and subject keeps its cache, keyed on those values too;
// on generated ABAC questions every cached answer is what evaluating gives.
func TestCacheKeyedOnTheFieldsAnABACPolicyReads(t *testing.T) {
	src, err := source.FromFiles("../../scopes.yaml", "../../policies")
	if err != nil {
		t.Fatal(err)
	}
	if err := policyvariant.EditAuthz(src.Modules, policyvariant.Owner); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cached, plain := cachedAndPlain(t, src)
	st := cached.CacheStats()
	if !st.Enabled || strings.Join(st.Fields, " ") != "resource.owner subject" {
		t.Fatalf("cache stats %+v", st)
	}
	r := rand.New(rand.NewPCG(5, 8))
	for i := range 400 {
		in := Input{GrantedScopes: [][]string{{"project:read"}, {"project:manage"}, {"user:read"}}[r.IntN(3)],
			Method: "GET", Path: fmt.Sprintf("/projects/%d", r.IntN(50)), Subject: fmt.Sprintf("u%d", r.IntN(3))}
		switch r.IntN(3) {
		case 0:
			in.Resource = map[string]any{"type": "project", "owner": fmt.Sprintf("u%d", r.IntN(3))}
		case 1:
			in.Resource = map[string]any{"type": "project"}
		}
		want, err1 := plain.DecideInput(ctx, in, Options{})
		got, err2 := cached.DecideInput(ctx, in, Options{})
		if err1 != nil || err2 != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("question %d %+v: cached %+v (%v), evaluated %+v (%v)", i, in, got, err2, want, err1)
		}
	}
	if st := cached.CacheStats(); st.Hits < 200 {
		t.Fatalf("only %d hits of 400", st.Hits)
	}
}

func TestCacheIsBoundedInBytes(t *testing.T) {
	const budget = 64 << 10
	c := newDecisionCache(budget)
	d := Decision{Reason: "missing_scope", Explain: []string{strings.Repeat("e", 100)}}
	for i := range 10000 {
		c.put(strconv.Itoa(i)+strings.Repeat("x", i%50), d)
		if b := c.bytes(); b > budget {
			t.Fatalf("after %d puts the cache holds %d bytes, budget %d", i+1, b, budget)
		}
	}
	if c.bytes() == 0 {
		t.Fatal("nothing cached")
	}
	c.put("keep", Decision{Reason: "r"})
	if got, ok := c.get("keep"); !ok || got.Reason != "r" {
		t.Fatal("newest entry lost")
	}
	// One entry over a sixteenth of the budget is not cached at all.
	c.put("big", Decision{Reason: "r", Explain: []string{strings.Repeat("e", budget/16)}})
	if _, ok := c.get("big"); ok {
		t.Fatal("outsized entry cached")
	}
	for _, r := range []string{ReasonUnknownScope, ReasonInvalidInput} {
		c.put(r, Decision{Reason: r})
		if _, ok := c.get(r); ok {
			t.Fatalf("%s decision cached", r)
		}
	}
}

// TestCacheChargeCoversHeap checks the charge is not an underestimate:
// the heap a full cache really holds stays within twice its budget.
func TestCacheChargeCoversHeap(t *testing.T) {
	const budget = 8 << 20
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	before := heap()
	c := newDecisionCache(budget)
	for i := range 200000 {
		c.put(cacheKey(Input{Action: "project:read", GrantedScopes: []string{"project:read", "p" + strconv.Itoa(i)}}), Decision{
			Reason: "allowed", Allow: true, Action: "project:read",
			RequiredAnyOf: []string{"project:read"}, GrantedEffective: []string{"project:read", "p" + strconv.Itoa(i)},
			Matched: []string{"project:read"}, Missing: []string{}, Explain: []string{"granted project:read allows project:read (" + strconv.Itoa(i) + ")"},
		})
	}
	grown := heap() - before
	if grown > 2*budget {
		t.Fatalf("a full cache holds %d heap bytes, budget %d (charged %d)", grown, budget, c.bytes())
	}
	runtime.KeepAlive(c)
}

// cachedAndPlain compiles src twice: with the decision cache, and without
// it, the reference a cached answer must equal.
func cachedAndPlain(t *testing.T, src *source.Source) (cached, plain *Engine) {
	t.Helper()
	var err error
	if cached, err = New(context.Background(), src); err != nil {
		t.Fatal(err)
	}
	if plain, err = New(context.Background(), src, WithCacheBytes(0)); err != nil {
		t.Fatal(err)
	}
	return cached, plain
}
