package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/scopegate/scopegate/internal/source"
)

// routeSegments are what random route patterns and paths are made of:
// literals, parameters, a malformed parameter, empty segments.
var routeSegments = []string{"a", "b", "projects", "{id}", "{x}", "{", "", "7"}

func randomRoutes(r *rand.Rand) []Route {
	routes := make([]Route, 1+r.IntN(8))
	for i := range routes {
		routes[i] = Route{Method: []string{"GET", "POST"}[r.IntN(2)], Path: randomPath(r, true), Action: fmt.Sprintf("act.%d", r.IntN(4))}
	}
	if r.IntN(3) == 0 { // a duplicate, which Rego's set counts once
		routes = append(routes, routes[0])
	}
	return routes
}

func randomPath(r *rand.Rand, pattern bool) string {
	n := 1 + r.IntN(3)
	segs := make([]string, n)
	for i := range segs {
		segs[i] = routeSegments[r.IntN(len(routeSegments))]
		if !pattern && strings.HasPrefix(segs[i], "{") && r.IntN(2) == 0 {
			segs[i] = "42"
		}
	}
	p := strings.Join(segs, "/")
	if r.IntN(4) > 0 {
		p = "/" + p
	}
	if r.IntN(4) == 0 {
		p += "/"
	}
	return p
}

// regoRoutes builds an engine on the repository's authz.rego with routes as
// its whole route table.
func regoRoutes(t testing.TB, routes []Route) *Engine {
	t.Helper()
	src, err := source.FromFiles("../../scopes.yaml", "../../policies")
	if err != nil {
		t.Fatal(err)
	}
	table, _ := json.Marshal(routes)
	for name := range src.Modules {
		if strings.HasSuffix(name, "actions.rego") {
			src.Modules[name] = "package scopegate.actions\n\nnamed := {}\n\nroutes := " + string(table) + "\n"
		} else if strings.HasSuffix(name, "_test.rego") {
			delete(src.Modules, name)
		}
	}
	e, err := New(context.Background(), src, WithCacheBytes(0))
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// goTable is the Go route table of routes, read as the engine reads them.
func goTable(routes []Route) *routeTable {
	var doc []any
	raw, _ := json.Marshal(routes)
	_ = json.Unmarshal(raw, &doc)
	return newRouteTable(doc)
}

// sameRoute checks that the Go route table picks, for method and path, the
// route the Rego matcher picks (or none when it picks none).
func sameRoute(t testing.TB, e *Engine, table *routeTable, method, path string) {
	t.Helper()
	d, err := e.DecideInput(context.Background(), Input{GrantedScopes: []string{}, Method: method, Path: path}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	id, ok := table.match(method, path)
	var want string
	if ok {
		var r Route
		_ = json.Unmarshal([]byte(id), &r)
		want = r.Method + " " + r.Path
	}
	if d.Route != want {
		t.Fatalf("%s %q: Rego picks %q, the Go table %q (routes %v)", method, path, d.Route, want, table.routes)
	}
}

// TestRouteTableMatchesRego: on random route tables (parameters, malformed
// parameters, empty segments, slashes, duplicates, ties), the Go resolver
// picks the route the policy's Rego matcher picks for every path tried.
func TestRouteTableMatchesRego(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 11))
	for range 25 {
		routes := randomRoutes(r)
		e := regoRoutes(t, routes)
		table := goTable(routes)
		for range 60 {
			sameRoute(t, e, table, []string{"GET", "POST"}[r.IntN(2)], randomPath(r, false))
		}
		for _, rt := range routes { // each pattern's own path, with and without its parameters filled
			sameRoute(t, e, table, rt.Method, rt.Path)
			sameRoute(t, e, table, rt.Method, strings.NewReplacer("{id}", "9", "{x}", "q").Replace(rt.Path))
		}
	}
}

// FuzzRouteTable: the same, for the route tables and paths a seed makes.
func FuzzRouteTable(f *testing.F) {
	f.Add(uint64(1), uint64(2))
	f.Add(uint64(99), uint64(3))
	f.Fuzz(func(t *testing.T, a, b uint64) {
		r := rand.New(rand.NewPCG(a, b))
		routes := randomRoutes(r)
		e := regoRoutes(t, routes)
		table := goTable(routes)
		for range 20 {
			sameRoute(t, e, table, []string{"GET", "POST"}[r.IntN(2)], randomPath(r, false))
		}
	})
}

// TestRouteKeys: the repository's policy is keyed on routes; a policy that
// reads input.path anywhere else is keyed on the path, and says why.
func TestRouteKeys(t *testing.T) {
	src, err := source.FromFiles("../../scopes.yaml", "../../policies")
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(context.Background(), src)
	if err != nil {
		t.Fatal(err)
	}
	if st := e.CacheStats(); !st.RouteKeys {
		t.Fatalf("repository policy not keyed on routes: %s", st.RouteNote)
	}
	for name, text := range src.Modules {
		if strings.HasSuffix(name, "/authz.rego") {
			src.Modules[name] = text + "\nframed if startswith(input.path, \"/projects/1\")\n"
		}
	}
	e, err = New(context.Background(), src)
	if err != nil {
		t.Fatal(err)
	}
	if st := e.CacheStats(); st.RouteKeys || !strings.Contains(st.RouteNote, "reads input.path in rule framed") {
		t.Fatalf("a policy reading the path elsewhere: route keys %v (%s)", st.RouteKeys, st.RouteNote)
	}
}

// TestRouteKeyedCacheMatchesEvaluated: with the repository's policy, every
// route question (fresh ids, unknown paths, other methods) answered through
// the route-keyed cache is exactly what evaluating it gives.
func TestRouteKeyedCacheMatchesEvaluated(t *testing.T) {
	src, err := source.FromFiles("../../scopes.yaml", "../../policies")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cached, plain := cachedAndPlain(t, src)
	r := rand.New(rand.NewPCG(3, 5))
	paths := []string{"/projects/%d", "/projects/%d/launch", "/projects/%d/documents", "/projects/templates", "/glossaries/%d",
		"/nowhere/%d", "/projects/%d/x", "/projects//launch", "/me", "/discussions/%d/messages"}
	scopeSets := [][]string{{"project:read"}, {"project:manage"}, {"glossary:write", "user:read"}, {}}
	for i := range 600 {
		p := paths[r.IntN(len(paths))]
		if strings.Contains(p, "%d") {
			p = fmt.Sprintf(p, r.IntN(1000))
		}
		in := Input{GrantedScopes: scopeSets[r.IntN(len(scopeSets))], Method: []string{"GET", "POST", "PUT", "DELETE"}[r.IntN(4)], Path: p}
		want, err1 := plain.DecideInput(ctx, in, Options{})
		got, err2 := cached.DecideInput(ctx, in, Options{})
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		a, _ := json.Marshal(want)
		b, _ := json.Marshal(got)
		if string(a) != string(b) {
			t.Fatalf("question %d %s %s: cached\n%s\nevaluated\n%s", i, in.Method, in.Path, b, a)
		}
	}
	if st := cached.CacheStats(); !st.RouteKeys || st.Hits < 200 {
		t.Fatalf("route keys %v, %d hits of 600", st.RouteKeys, st.Hits)
	}
}
