package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage"
)

// Route keys. A gateway forwards routes with a fresh resource id each time
// (GET /projects/7781), so a cache keyed on the path never hits. The
// decision for such a request depends on the path only through the route
// it picks, so when that can be shown the cache is keyed on the route
// instead: routeTable resolves the route in Go, from the policy's own
// route data, exactly as policies/authz.rego's matcher does
// (TestRouteTableMatchesRego and FuzzRouteTable hold the two together).
// The Rego matcher stays the source of truth for the decision and for
// `opa eval` callers; this only names the cache entry.

// routePathRules are the rules of package scopegate.authz that may read
// input.path while the cache keys on routes: the matcher's path_segments,
// and explain_action, which names the path only when no route or several
// match (and then the key is the path).
var routePathRules = map[string]bool{"path_segments": true, "explain_action": true}

// routeKeyability says why the modules' decision cannot be keyed on the
// route, or "": every read of input.path must be in routePathRules.
func routeKeyability(modules []*ast.Module) string {
	var why string
	for _, m := range modules {
		for _, r := range m.Rules {
			name := r.Head.Ref().String()
			ast.WalkRefs(r, func(ref ast.Ref) bool {
				if why == "" && ref.HasPrefix(ast.InputRootRef) && len(ref) > 1 && ref[1].Value.Compare(ast.String("path")) == 0 &&
					(!m.Package.Path.Equal(authzPath) || !routePathRules[name]) {
					why = fmt.Sprintf("%s reads input.path in rule %s", where(ref[0].Location), name)
				}
				return false
			})
		}
	}
	return why
}

var authzPath = ast.MustParseRef("data.scopegate.authz")

// routeTable is data.scopegate.actions.routes, prepared for matching.
type routeTable struct {
	routes []tableRoute
}

type tableRoute struct {
	id       string // the route object, canonically encoded: Rego's set identity
	method   string
	path     string   // as written, as the decision names it
	pattern  []string // split(trim(path, "/"), "/")
	literals int      // segments not starting with "{"
}

// newRouteTable reads the evaluated route document. Entries the Rego
// matcher would skip (a method or path that is not a string) are skipped.
func newRouteTable(v any) *routeTable {
	list, _ := v.([]any)
	t := &routeTable{}
	for _, x := range list {
		r, _ := x.(map[string]any)
		method, ok1 := r["method"].(string)
		path, ok2 := r["path"].(string)
		if !ok1 || !ok2 {
			continue
		}
		id, err := json.Marshal(r) // map keys sorted: one encoding per object
		if err != nil {
			continue
		}
		tr := tableRoute{id: string(id), method: method, path: path, pattern: strings.Split(strings.Trim(path, "/"), "/")}
		for _, seg := range tr.pattern {
			if !strings.HasPrefix(seg, "{") {
				tr.literals++
			}
		}
		t.routes = append(t.routes, tr)
	}
	return t
}

// match returns the route a request picks when exactly one route is best,
// as the policy's route rule does; false when none or several do.
func (t *routeTable) match(method, path string) (string, bool) {
	if method == "" || path == "" {
		return "", false // absent from the input (Input.Value): nothing matches
	}
	segs := strings.Split(strings.Trim(path, "/"), "/")
	best, bestID, n := -1, "", 0
	for i := range t.routes {
		r := &t.routes[i]
		if r.method != method || len(r.pattern) != len(segs) || !segmentsMatch(r.pattern, segs) {
			continue
		}
		switch {
		case r.literals > best:
			best, bestID, n = r.literals, r.id, 1
		case r.literals == best && r.id != bestID:
			n++ // a set: the same route object twice counts once
		}
	}
	return bestID, n == 1
}

func segmentsMatch(pattern, segs []string) bool {
	for i, p := range pattern {
		param := strings.HasPrefix(p, "{") && strings.HasSuffix(p, "}") && segs[i] != ""
		if !param && p != segs[i] {
			return false
		}
	}
	return true
}

// loadRouteTable evaluates data.scopegate.actions.routes with the policy's
// modules and data.
func loadRouteTable(ctx context.Context, store storage.Store, modules []*ast.Module) (*routeTable, error) {
	opts := []func(*rego.Rego){rego.Query("data.scopegate.actions.routes"), rego.Store(store)}
	for _, m := range modules {
		opts = append(opts, rego.ParsedModule(m))
	}
	rs, err := rego.New(opts...).Eval(ctx)
	if err != nil {
		return nil, err
	}
	if len(rs) == 0 || len(rs[0].Expressions) == 0 {
		return &routeTable{}, nil
	}
	return newRouteTable(rs[0].Expressions[0].Value), nil
}

// checkRouteKeys asks the compiled policy, for each route with a
// parameter, the same question on two paths that differ only in their
// parameters: both must pick that route in Go and in Rego, and get the
// same decision. Otherwise keying on the route would change answers.
func (e *Engine) checkRouteKeys(ctx context.Context, t *routeTable) error {
	for _, r := range t.routes {
		var paths [2]string
		for k, v := range []string{"1", "zz-9"} {
			segs := make([]string, len(r.pattern))
			for i, p := range r.pattern {
				segs[i] = p
				if strings.HasPrefix(p, "{") && strings.HasSuffix(p, "}") {
					segs[i] = v
				}
			}
			paths[k] = "/" + strings.Join(segs, "/")
		}
		if paths[0] == paths[1] {
			continue // no parameter: the path is the route
		}
		var decisions [2]string
		for k, p := range paths {
			if id, ok := t.match(r.method, p); !ok || id != r.id {
				break // another route wins there: nothing to compare
			}
			v, err := Input{GrantedScopes: []string{}, Method: r.method, Path: p}.Value()
			if err != nil {
				return err
			}
			d, err := e.Decide(ctx, v, Options{})
			if err != nil {
				return fmt.Errorf("route %s %s: %w", r.method, p, err)
			}
			if want := r.method + " " + r.path; d.Route != want {
				return fmt.Errorf("%s %s: the policy picks route %q, the route table %q", r.method, p, d.Route, want)
			}
			b, _ := json.Marshal(d)
			decisions[k] = string(b)
		}
		if decisions[0] != "" && decisions[1] != "" && decisions[0] != decisions[1] {
			return fmt.Errorf("route %s %s decides differently for %s and %s", r.method, strings.Join(r.pattern, "/"), paths[0], paths[1])
		}
	}
	return nil
}
