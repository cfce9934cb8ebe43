// Package policycheck finds what the policies name that the catalog does
// not define: a named action requiring a scope the catalog lost, a route
// pointing at an action that does not exist. `scopegate gen` runs it, so a
// catalog edit that removes or renames a scope a policy uses fails at
// generation time (and in CI), with the policy file and line, instead of
// turning into policy_error denials at request time.
//
// It evaluates the policies' own data.scopegate.actions with OPA, against
// the catalog data it is given, so it knows nothing of any one catalog.
package policycheck

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage/inmem"

	"github.com/scopegate/scopegate/internal/engine"
	"github.com/scopegate/scopegate/internal/source"
)

// ActionsQuery is the document holding named actions and routes.
const ActionsQuery = "data.scopegate.actions"

var actionsPath = ast.MustParseRef(ActionsQuery)

// Problem is one thing a policy names that the catalog lacks, located at the
// policy text that names it.
type Problem struct {
	File string
	Line int
	Msg  string
}

func (p Problem) String() string {
	if p.File == "" {
		return p.Msg
	}
	return fmt.Sprintf("%s:%d: %s", p.File, p.Line, p.Msg)
}

// Problems is every problem found, sorted by file and line.
type Problems []Problem

func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Check evaluates src's data.scopegate.actions against src's catalog data.
// Policies without an actions package have nothing to check. The error is
// for policies that do not compile or evaluate, or data without a catalog.
func Check(ctx context.Context, src *source.Source) (Problems, error) {
	cat, err := engine.NewCatalogView(src.Data)
	if err != nil {
		return nil, err
	}
	mods, err := src.Parse(false)
	if err != nil {
		return nil, err
	}
	opts := []func(*rego.Rego){rego.Query(ActionsQuery), rego.Store(inmem.NewFromObject(src.Data))}
	modules := make([]*ast.Module, len(mods))
	for i, m := range mods {
		modules[i] = m.Parsed
		opts = append(opts, rego.ParsedModule(m.Parsed))
	}
	rs, err := rego.New(opts...).Eval(ctx)
	if err != nil {
		return nil, fmt.Errorf("evaluate %s: %w", ActionsQuery, err)
	}
	if len(rs) == 0 || len(rs[0].Expressions) == 0 {
		return nil, nil
	}
	doc, _ := rs[0].Expressions[0].Value.(map[string]any)
	loc := locator{modules: actionModules(modules)}

	var problems Problems
	named, _ := doc["named"].(map[string]any)
	actions := make([]string, 0, len(named))
	for a := range named {
		actions = append(actions, a)
	}
	sort.Strings(actions)
	for _, a := range actions {
		spec, _ := named[a].(map[string]any)
		anyOf, ok := spec["any_of"].([]any)
		if !ok || len(anyOf) == 0 {
			problems = append(problems, loc.named(a, "", fmt.Sprintf("named action %q has no any_of list of scopes", a)))
			continue
		}
		for _, x := range anyOf {
			s, _ := x.(string)
			if _, known := cat.Lookup(s); known {
				continue
			}
			msg := fmt.Sprintf("named action %q requires scope %q, which the catalog does not define", a, s)
			if near := cat.Suggest(s); near != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", near)
			}
			problems = append(problems, loc.named(a, s, msg))
		}
	}

	routes, _ := doc["routes"].([]any)
	for _, x := range routes {
		r, _ := x.(map[string]any)
		method, _ := r["method"].(string)
		path, _ := r["path"].(string)
		action, _ := r["action"].(string)
		if _, isScope := cat.Lookup(action); isScope {
			continue
		}
		if _, isNamed := named[action]; isNamed {
			continue
		}
		msg := fmt.Sprintf("route %s %s names action %q, which is neither a catalog scope nor a named action", method, path, action)
		if near := cat.Suggest(action); near != "" {
			msg += fmt.Sprintf(" (did you mean scope %q?)", near)
		}
		problems = append(problems, loc.route(method, path, action, msg))
	}
	sort.SliceStable(problems, func(i, j int) bool {
		if problems[i].File != problems[j].File {
			return problems[i].File < problems[j].File
		}
		return problems[i].Line < problems[j].Line
	})
	return problems, nil
}

func actionModules(all []*ast.Module) []*ast.Module {
	var out []*ast.Module
	for _, m := range all {
		if m.Package.Path.Equal(actionsPath) {
			out = append(out, m)
		}
	}
	return out
}

// locator finds the policy text behind a problem.
type locator struct{ modules []*ast.Module }

// rules returns the rules defining name (named, routes) in the actions
// package, whatever their head form (named := {...}, named[k] := v).
func (l locator) rules(name string) []*ast.Rule {
	var out []*ast.Rule
	for _, m := range l.modules {
		for _, r := range m.Rules {
			if ref := r.Head.Ref(); len(ref) > 0 && ref[0].Value.Compare(ast.Var(name)) == 0 {
				out = append(out, r)
			}
		}
	}
	return out
}

// named locates scope (or, if "", the action) inside action's entry.
func (l locator) named(action, scope, msg string) Problem {
	rules := l.rules("named")
	want := ast.String(action)
	if scope != "" {
		want = ast.String(scope)
	}
	// The entry's object literal: "action": {...scope...}.
	for _, r := range rules {
		var hit *ast.Location
		ast.WalkTerms(r, func(t *ast.Term) bool {
			obj, ok := t.Value.(ast.Object)
			if hit != nil || !ok {
				return hit != nil
			}
			if v := obj.Get(ast.StringTerm(action)); v != nil {
				hit = find(v, want)
				if hit == nil {
					hit = v.Location
				}
			}
			return hit != nil
		})
		if hit != nil {
			return at(hit, msg)
		}
	}
	// A rule per entry: named["action"] := {...}.
	for _, r := range rules {
		if ref := r.Head.Ref(); len(ref) > 1 && ref[1].Value.Compare(ast.String(action)) == 0 {
			if hit := find(r, want); hit != nil {
				return at(hit, msg)
			}
			return at(r.Location, msg)
		}
	}
	return l.fallback(rules, want, msg)
}

// route locates the route entry {"method", "path", "action"}.
func (l locator) route(method, path, action, msg string) Problem {
	rules := l.rules("routes")
	for _, r := range rules {
		var hit *ast.Location
		ast.WalkTerms(r, func(t *ast.Term) bool {
			obj, ok := t.Value.(ast.Object)
			if hit != nil || !ok {
				return hit != nil
			}
			if eq(obj, "action", action) && eq(obj, "path", path) && eq(obj, "method", method) {
				hit = t.Location
			}
			return hit != nil
		})
		if hit != nil {
			return at(hit, msg)
		}
	}
	return l.fallback(rules, ast.String(action), msg)
}

func (l locator) fallback(rules []*ast.Rule, want ast.String, msg string) Problem {
	for _, r := range rules {
		if hit := find(r, want); hit != nil {
			return at(hit, msg)
		}
	}
	if len(rules) > 0 {
		return at(rules[0].Location, msg)
	}
	return Problem{Msg: msg}
}

func eq(obj ast.Object, key, want string) bool {
	v := obj.Get(ast.StringTerm(key))
	return v != nil && v.Value.Compare(ast.String(want)) == 0
}

// find returns where the string want first occurs under x.
func find(x any, want ast.String) *ast.Location {
	var hit *ast.Location
	ast.WalkTerms(x, func(t *ast.Term) bool {
		if hit == nil && t.Value.Compare(want) == 0 {
			hit = t.Location
		}
		return hit != nil
	})
	return hit
}

func at(loc *ast.Location, msg string) Problem {
	if loc == nil {
		return Problem{Msg: msg}
	}
	return Problem{File: loc.File, Line: loc.Row, Msg: msg}
}
