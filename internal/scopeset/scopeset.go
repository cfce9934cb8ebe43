// Package scopeset normalises a requested scope list against a catalog:
// the minimal equivalent set, everything it confers, and what a reviewer
// should question (unknown names, over-broad manage scopes, sensitive
// scopes). It is plain Go over the catalog view an engine was built from,
// so it answers for whichever catalog is loaded.
package scopeset

import (
	"fmt"
	"slices"
	"strings"

	"github.com/scopegate/scopegate/internal/engine"
)

// ManageVerb marks RESOURCE:manage, full access to a resource, which the
// catalog requires to include every other scope of its resource.
const ManageVerb = "manage"

// Result is a normalised scope request. Every list is sorted by name and
// never nil.
type Result struct {
	// Requested is the request as given, without duplicates.
	Requested []string `json:"requested"`
	// Minimal is the smallest subset of the known requested scopes that
	// confers the same: a scope another requested scope implies is dropped.
	Minimal []string `json:"minimal"`
	// Scope is Minimal as a space-separated scope string (RFC 6749 3.3).
	Scope string `json:"scope"`
	// Expanded is everything Minimal confers (the union of the closures).
	Expanded []string `json:"expanded"`
	// DefaultApplied: nothing was requested, so the catalog's default scope
	// is what a token would get; Expanded is its closure.
	DefaultApplied bool `json:"default_applied"`
	// Redundant lists the requested scopes Minimal dropped, and why.
	Redundant []Redundant `json:"redundant"`
	// Unknown lists requested names the catalog lacks.
	Unknown []Unknown `json:"unknown"`
	// OverBroad lists requested RESOURCE:manage scopes.
	OverBroad []OverBroad `json:"over_broad"`
	// Sensitive lists the sensitive scopes in Expanded.
	Sensitive []Sensitive `json:"sensitive"`
	// Hints say, in sentences, how to ask for less.
	Hints []string `json:"hints"`
}

// Redundant is a requested scope already conferred by other requested ones.
type Redundant struct {
	Scope     string   `json:"scope"`
	ImpliedBy []string `json:"implied_by"`
}

// Unknown is a requested name the catalog lacks.
type Unknown struct {
	Scope      string `json:"scope"`
	DidYouMean string `json:"did_you_mean,omitempty"`
}

// OverBroad is a requested RESOURCE:manage scope, with the narrower scopes
// it includes that together confer everything but manage itself.
type OverBroad struct {
	Scope    string   `json:"scope"`
	Resource string   `json:"resource"`
	Narrower []string `json:"narrower"`
}

// Sensitive is a sensitive scope the request confers, and the requested
// scopes that confer it.
type Sensitive struct {
	Scope       string   `json:"scope"`
	Description string   `json:"description"`
	Via         []string `json:"via"`
}

// Normalize analyses requested (as request.ParseScopeString or the request
// decoders give it: checked for form, possibly empty) against cat.
func Normalize(cat *engine.CatalogView, requested []string) Result {
	r := Result{
		Requested: dedupeSorted(requested),
		Minimal:   []string{}, Expanded: []string{},
		Redundant: []Redundant{}, Unknown: []Unknown{}, OverBroad: []OverBroad{}, Sensitive: []Sensitive{},
		Hints: []string{},
	}
	var known []string
	for _, s := range r.Requested {
		if _, ok := cat.Lookup(s); ok {
			known = append(known, s)
		} else {
			r.Unknown = append(r.Unknown, Unknown{Scope: s, DidYouMean: cat.Suggest(s)})
		}
	}

	r.Minimal = minimal(cat, known)
	for _, s := range known {
		if slices.Contains(r.Minimal, s) {
			continue
		}
		var by []string
		for _, t := range known {
			if t != s && implies(cat, t, s) {
				by = append(by, t)
			}
		}
		r.Redundant = append(r.Redundant, Redundant{Scope: s, ImpliedBy: by})
	}
	r.Scope = strings.Join(r.Minimal, " ")

	conferring := known
	if len(r.Requested) == 0 && cat.DefaultScope() != "" {
		r.DefaultApplied = true
		conferring = []string{cat.DefaultScope()}
	}
	r.Expanded = closure(cat, conferring)

	for _, s := range known {
		res, verb, ok := strings.Cut(s, ":")
		if !ok || verb != ManageVerb {
			continue
		}
		info, _ := cat.Lookup(s)
		r.OverBroad = append(r.OverBroad, OverBroad{Scope: s, Resource: res, Narrower: minimal(cat, info.Includes)})
	}

	for _, s := range r.Expanded {
		info, _ := cat.Lookup(s)
		if !info.Sensitive {
			continue
		}
		via := []string{}
		for _, t := range conferring {
			if implies(cat, t, s) {
				via = append(via, t)
			}
		}
		r.Sensitive = append(r.Sensitive, Sensitive{Scope: s, Description: info.Description, Via: via})
	}
	r.Hints = hints(cat, r)
	return r
}

func hints(cat *engine.CatalogView, r Result) []string {
	out := []string{}
	if r.DefaultApplied {
		out = append(out, fmt.Sprintf("no scopes requested: a token gets the default scope %s", cat.DefaultScope()))
	}
	for _, u := range r.Unknown {
		h := fmt.Sprintf("%s is not in the catalog", u.Scope)
		if u.DidYouMean != "" {
			h += fmt.Sprintf(" (did you mean %s?)", u.DidYouMean)
		}
		out = append(out, h+": a token naming it is denied (unknown_scope); remove it")
	}
	for _, d := range r.Redundant {
		out = append(out, fmt.Sprintf("drop %s: %s already grants it", d.Scope, strings.Join(d.ImpliedBy, ", ")))
	}
	for _, o := range r.OverBroad {
		h := fmt.Sprintf("%s is full access to %s: ask only for what the app needs", o.Scope, o.Resource)
		if len(o.Narrower) > 0 {
			h += fmt.Sprintf(", e.g. some of %s", strings.Join(o.Narrower, ", "))
		}
		out = append(out, h)
	}
	for _, s := range r.Sensitive {
		if len(s.Via) == 1 && s.Via[0] == s.Scope {
			out = append(out, fmt.Sprintf("%s is sensitive (%s): consent screens flag it; request it only if the app needs it", s.Scope, strings.TrimSuffix(s.Description, ".")))
		} else {
			out = append(out, fmt.Sprintf("%s confers sensitive %s (%s)", strings.Join(s.Via, ", "), s.Scope, strings.TrimSuffix(s.Description, ".")))
		}
	}
	if len(out) == 0 {
		out = append(out, "already minimal: nothing to drop or narrow")
	}
	return out
}

// minimal drops every scope another scope of set implies. A generated
// catalog has no inclusion cycles; should hand-made bundle data hold two
// scopes implying each other, the first by name is kept.
func minimal(cat *engine.CatalogView, set []string) []string {
	out := []string{}
	for _, s := range set {
		redundant := false
		for _, t := range set {
			if t != s && implies(cat, t, s) && (!implies(cat, s, t) || t < s) {
				redundant = true
				break
			}
		}
		if !redundant {
			out = append(out, s)
		}
	}
	return dedupeSorted(out)
}

// implies reports whether scope a confers scope b (a known).
func implies(cat *engine.CatalogView, a, b string) bool {
	info, ok := cat.Lookup(a)
	if !ok {
		return false
	}
	return slices.Contains(info.Implies, b)
}

func closure(cat *engine.CatalogView, set []string) []string {
	var out []string
	for _, s := range set {
		if info, ok := cat.Lookup(s); ok {
			out = append(out, info.Implies...)
		}
	}
	return dedupeSorted(out)
}

func dedupeSorted(in []string) []string {
	out := slices.Clone(in)
	slices.Sort(out)
	out = slices.Compact(out)
	if out == nil {
		out = []string{}
	}
	return out
}
