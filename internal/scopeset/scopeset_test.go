package scopeset_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/util"

	"github.com/scopegate/scopegate/internal/catalog"
	"github.com/scopegate/scopegate/internal/engine"
	"github.com/scopegate/scopegate/internal/gen"
	"github.com/scopegate/scopegate/internal/request"
	"github.com/scopegate/scopegate/internal/scopeset"
)

// view builds the catalog view the way an engine does: from the generated
// data document, not from the parsed catalog.
func view(t testing.TB, path string) *engine.CatalogView {
	t.Helper()
	c, err := catalog.LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := gen.JSON(c)
	if err != nil {
		t.Fatal(err)
	}
	var data map[string]any
	if err := util.UnmarshalJSON(raw, &data); err != nil {
		t.Fatal(err)
	}
	v, err := engine.NewCatalogView(data)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestNormalize(t *testing.T) {
	v := view(t, "../../scopes.yaml")
	for _, tc := range []struct {
		name, requested    string
		minimal, expanded  []string
		redundant          []string
		unknown, overBroad []string
		sensitive          []string
		defaultApplied     bool
		hint               string
	}{
		{name: "already minimal", requested: "user:read user:email",
			minimal: []string{"user:email", "user:read"}, expanded: []string{"user:email", "user:read"},
			hint: "already minimal: nothing to drop or narrow"},
		{name: "implied scopes dropped", requested: "project:read project:write user:read",
			minimal: []string{"project:write", "user:read"}, expanded: []string{"project:read", "project:write", "user:read"},
			redundant: []string{"project:read"}, hint: "drop project:read: project:write already grants it"},
		{name: "manage swallows its resource and is over-broad", requested: "project:manage project:read project:launch",
			minimal:   []string{"project:manage"},
			expanded:  []string{"project:launch", "project:manage", "project:quote", "project:read", "project:write"},
			redundant: []string{"project:launch", "project:read"}, overBroad: []string{"project:manage"}, sensitive: []string{"project:launch"},
			hint: "project:manage is full access to project: ask only for what the app needs, e.g. some of project:launch, project:quote, project:write"},
		{name: "sensitive requested directly", requested: "transaction:read",
			minimal: []string{"transaction:read"}, expanded: []string{"transaction:read"}, sensitive: []string{"transaction:read"},
			hint: "transaction:read is sensitive (Read-only access to financial transactions): consent screens flag it; request it only if the app needs it"},
		{name: "sensitive through manage", requested: "project:manage",
			minimal: []string{"project:manage"}, expanded: []string{"project:launch", "project:manage", "project:quote", "project:read", "project:write"},
			overBroad: []string{"project:manage"}, sensitive: []string{"project:launch"},
			hint: "project:manage confers sensitive project:launch (Launch projects and debit the client's account)"},
		{name: "unknown with suggestion", requested: "project:lunch user:read",
			minimal: []string{"user:read"}, expanded: []string{"user:read"}, unknown: []string{"project:lunch"},
			hint: "project:lunch is not in the catalog (did you mean project:launch?): a token naming it is denied (unknown_scope); remove it"},
		{name: "only unknown", requested: "nope:nope",
			minimal: []string{}, expanded: []string{}, unknown: []string{"nope:nope"}, hint: "nope:nope is not in the catalog"},
		{name: "nothing requested is the default", requested: "",
			minimal: []string{}, expanded: []string{"public"}, defaultApplied: true,
			hint: "no scopes requested: a token gets the default scope public"},
		{name: "duplicates and order do not matter", requested: "user:write user:read user:write",
			minimal: []string{"user:write"}, expanded: []string{"user:read", "user:write"}, redundant: []string{"user:read"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := request.ParseScopeString(tc.requested)
			if err != nil {
				t.Fatal(err)
			}
			r := scopeset.Normalize(v, req)
			check := func(what string, got, want []string) {
				t.Helper()
				if want == nil {
					want = []string{}
				}
				if !slices.Equal(got, want) {
					t.Errorf("%s = %v, want %v", what, got, want)
				}
			}
			check("minimal", r.Minimal, tc.minimal)
			check("expanded", r.Expanded, tc.expanded)
			check("redundant", names(r.Redundant, func(x scopeset.Redundant) string { return x.Scope }), tc.redundant)
			check("unknown", names(r.Unknown, func(x scopeset.Unknown) string { return x.Scope }), tc.unknown)
			check("over_broad", names(r.OverBroad, func(x scopeset.OverBroad) string { return x.Scope }), tc.overBroad)
			check("sensitive", names(r.Sensitive, func(x scopeset.Sensitive) string { return x.Scope }), tc.sensitive)
			if r.DefaultApplied != tc.defaultApplied {
				t.Errorf("default_applied = %v", r.DefaultApplied)
			}
			if r.Scope != strings.Join(r.Minimal, " ") {
				t.Errorf("scope %q does not spell minimal %v", r.Scope, r.Minimal)
			}
			if tc.hint != "" && !slices.ContainsFunc(r.Hints, func(h string) bool { return strings.HasPrefix(h, tc.hint) }) {
				t.Errorf("hints %q lack %q", r.Hints, tc.hint)
			}
		})
	}
}

func TestNormalizeDetails(t *testing.T) {
	v := view(t, "../../scopes.yaml")
	r := scopeset.Normalize(v, []string{"project:manage", "project:read", "project:write"})
	if got := r.Redundant; len(got) != 2 || got[0].Scope != "project:read" || !slices.Equal(got[0].ImpliedBy, []string{"project:manage", "project:write"}) {
		t.Errorf("redundant = %+v", got)
	}
	if got := r.OverBroad; len(got) != 1 || got[0].Resource != "project" || !slices.Equal(got[0].Narrower, []string{"project:launch", "project:quote", "project:write"}) {
		t.Errorf("over_broad = %+v", got)
	}
	if got := r.Sensitive; len(got) != 1 || !slices.Equal(got[0].Via, []string{"project:manage"}) || got[0].Description == "" {
		t.Errorf("sensitive = %+v", got)
	}
	// Results are never nil, so JSON shows [] rather than null.
	r = scopeset.Normalize(v, nil)
	if r.Requested == nil || r.Minimal == nil || r.Redundant == nil || r.Unknown == nil || r.OverBroad == nil || r.Sensitive == nil {
		t.Errorf("nil list in %+v", r)
	}
}

func names[T any](xs []T, f func(T) string) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = f(x)
	}
	return out
}

// FuzzNormalize parses a requested scope string exactly as the API does and
// checks normalisation's invariants on whatever it accepts.
func FuzzNormalize(f *testing.F) {
	for _, s := range []string{"", "user:read", "project:manage project:read", "a  b", "project:lunch user:email",
		"public project:write project:write", "user:manage user:write user:read user:email", " x", "\x00"} {
		f.Add(s)
	}
	v := view(f, "../../scopes.yaml")
	f.Fuzz(func(t *testing.T, s string) {
		req, err := request.ParseScopeString(s)
		if err != nil {
			return
		}
		r := scopeset.Normalize(v, req)
		known := map[string]bool{}
		for _, x := range r.Requested {
			if _, ok := v.Lookup(x); ok {
				known[x] = true
			}
		}
		if len(known)+len(r.Unknown) != len(r.Requested) {
			t.Fatalf("known %d + unknown %d != requested %d", len(known), len(r.Unknown), len(r.Requested))
		}
		if len(known) != len(r.Minimal)+len(r.Redundant) {
			t.Fatalf("minimal %v + redundant %v do not partition %v", r.Minimal, r.Redundant, known)
		}
		for _, m := range r.Minimal {
			if !known[m] {
				t.Fatalf("minimal scope %q was not requested", m)
			}
		}
		// The minimal set confers exactly what the whole request does.
		again := scopeset.Normalize(v, r.Minimal)
		if len(r.Minimal) == 0 && !r.DefaultApplied && len(r.Expanded) != 0 {
			t.Fatalf("nothing known requested, yet expanded %v", r.Expanded)
		}
		if len(r.Minimal) > 0 && !slices.Equal(again.Expanded, r.Expanded) {
			t.Fatalf("minimal %v expands to %v, request to %v", r.Minimal, again.Expanded, r.Expanded)
		}
		if len(again.Redundant) != 0 || !slices.Equal(again.Minimal, r.Minimal) {
			t.Fatalf("minimal set %v is not minimal: %+v", r.Minimal, again.Redundant)
		}
		for x := range known {
			if !slices.Contains(r.Expanded, x) {
				t.Fatalf("requested %q missing from expanded %v", x, r.Expanded)
			}
		}
		back, err := request.ParseScopeString(r.Scope)
		if err != nil || (len(back) > 0 && !slices.Equal(back, r.Minimal)) {
			t.Fatalf("scope string %q does not parse back to %v: %v", r.Scope, r.Minimal, err)
		}
		if len(r.Hints) == 0 {
			t.Fatal("no hints")
		}
	})
}
