package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
)

// ActionsQuery is the document that holds the policy's named actions and
// routes (policies/actions.rego).
const ActionsQuery = "data.scopegate.actions"

// NamedAction is one entry of data.scopegate.actions.named.
type NamedAction struct {
	Name        string   `json:"name"`
	AnyOf       []string `json:"any_of"`
	Description string   `json:"description"`
	// ConferredBy is every catalog scope that satisfies the action (the
	// union of satisfied_by over AnyOf), narrowest first as far as the
	// catalog orders them.
	ConferredBy []string `json:"conferred_by"`
	// Routes are the routes that map onto the action.
	Routes []Route `json:"routes"`
}

// Route is one entry of data.scopegate.actions.routes.
type Route struct {
	Method string `json:"method"`
	Path   string `json:"path"`
	Action string `json:"action"`
}

// ScopeActions says which policy actions a scope matters to.
type ScopeActions struct {
	// NeededBy: named actions that list the scope in any_of.
	NeededBy []string `json:"needed_by"`
	// Allows: named actions the scope confers, directly or through what it
	// includes (NeededBy is a subset).
	Allows []string `json:"allows"`
	// Routes: routes whose action is the scope itself or one it is needed by.
	Routes []Route `json:"routes"`
}

// ActionsView is the policy's action table, read once per engine.
type ActionsView struct {
	// Named is sorted by name; Routes keeps the policy's order.
	Named  []NamedAction `json:"named"`
	Routes []Route       `json:"routes"`
}

// actionsSource evaluates data.scopegate.actions the first time it is asked
// for. It compiles the modules again rather than at New: the decision path
// and start-up time do not pay for a table only the UI reads.
type actionsSource struct {
	modules []*ast.Module
	data    map[string]any

	mu   sync.Mutex
	view *ActionsView
	err  error
}

// Actions returns the policy's named actions and routes
// (data.scopegate.actions), with what confers each action according to the
// engine's catalog. It is evaluated once per engine; an error says the
// policy holds no readable action table.
func (e *Engine) Actions(ctx context.Context) (*ActionsView, error) {
	if e == nil || e.actions == nil {
		return nil, errors.New("engine: no policy loaded")
	}
	a := e.actions
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.view != nil || a.err != nil {
		return a.view, a.err
	}
	v, err := a.eval(ctx)
	if err != nil && ctx.Err() != nil {
		return nil, err // not cached: the next caller may have time
	}
	if err == nil && e.catalog != nil {
		v.resolve(e.catalog)
	}
	a.view, a.err = v, err
	return v, err
}

func (a *actionsSource) eval(ctx context.Context) (*ActionsView, error) {
	opts := []func(*rego.Rego){
		rego.Query(ActionsQuery),
		rego.Store(inmem.NewFromObject(a.data)),
	}
	for _, m := range a.modules {
		opts = append(opts, rego.ParsedModule(m))
	}
	rs, err := rego.New(opts...).Eval(ctx)
	if err != nil {
		return nil, fmt.Errorf("evaluate %s: %w", ActionsQuery, err)
	}
	v := &ActionsView{Named: []NamedAction{}, Routes: []Route{}}
	if len(rs) == 0 || len(rs[0].Expressions) == 0 {
		return v, nil // no actions package: every action is a scope
	}
	doc, ok := rs[0].Expressions[0].Value.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%s is %T, want an object", ActionsQuery, rs[0].Expressions[0].Value)
	}
	if raw, ok := doc["named"]; ok {
		named, ok := raw.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%s.named is %T, want an object", ActionsQuery, raw)
		}
		for name, x := range named {
			m, ok := x.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("%s.named[%q] is not an object", ActionsQuery, name)
			}
			na := NamedAction{Name: name, AnyOf: []string{}, ConferredBy: []string{}, Routes: []Route{}}
			na.Description, _ = m["description"].(string)
			list, ok := m["any_of"].([]any)
			if !ok {
				return nil, fmt.Errorf("%s.named[%q].any_of is not a list", ActionsQuery, name)
			}
			for _, s := range list {
				str, ok := s.(string)
				if !ok {
					return nil, fmt.Errorf("%s.named[%q].any_of holds a non-string", ActionsQuery, name)
				}
				na.AnyOf = append(na.AnyOf, str)
			}
			v.Named = append(v.Named, na)
		}
	}
	if raw, ok := doc["routes"]; ok {
		routes, ok := raw.([]any)
		if !ok {
			return nil, fmt.Errorf("%s.routes is %T, want a list", ActionsQuery, raw)
		}
		for i, x := range routes {
			m, ok := x.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("%s.routes[%d] is not an object", ActionsQuery, i)
			}
			var r Route
			r.Method, _ = m["method"].(string)
			r.Path, _ = m["path"].(string)
			r.Action, _ = m["action"].(string)
			v.Routes = append(v.Routes, r)
		}
	}
	sort.Slice(v.Named, func(i, j int) bool { return v.Named[i].Name < v.Named[j].Name })
	return v, nil
}

// resolve fills ConferredBy from the catalog and attaches routes.
func (v *ActionsView) resolve(cat *CatalogView) {
	for i := range v.Named {
		na := &v.Named[i]
		for _, s := range na.AnyOf {
			if info, ok := cat.Lookup(s); ok {
				for _, by := range info.SatisfiedBy {
					if !slices.Contains(na.ConferredBy, by) {
						na.ConferredBy = append(na.ConferredBy, by)
					}
				}
			}
		}
		for _, r := range v.Routes {
			if r.Action == na.Name {
				na.Routes = append(na.Routes, r)
			}
		}
	}
}

// ForScope says which actions and routes scope matters to.
func (v *ActionsView) ForScope(scope string) ScopeActions {
	out := ScopeActions{NeededBy: []string{}, Allows: []string{}, Routes: []Route{}}
	for _, na := range v.Named {
		needed := slices.Contains(na.AnyOf, scope)
		if needed {
			out.NeededBy = append(out.NeededBy, na.Name)
		}
		if needed || slices.Contains(na.ConferredBy, scope) {
			out.Allows = append(out.Allows, na.Name)
		}
	}
	for _, r := range v.Routes {
		if r.Action == scope || slices.Contains(out.NeededBy, r.Action) {
			out.Routes = append(out.Routes, r)
		}
	}
	return out
}
