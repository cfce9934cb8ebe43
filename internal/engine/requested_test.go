package engine_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/scopegate/scopegate/internal/engine"
)

// TestRequestedVsGranted: with requested_scopes the decision names what the
// user did not grant and whether that caused the deny.
func TestRequestedVsGranted(t *testing.T) {
	e := newEngine(t, repoSource(t))
	for _, tc := range []struct {
		name                string
		in                  engine.Input
		allow               bool
		reason              string
		requestedNotGranted []string
		narrowed            bool
		explain, remedy     string
	}{
		{"narrowed: asked manage, got write", engine.Input{GrantedScopes: []string{"project:write"}, RequestedScopes: []string{"project:manage", "user:read"}, Action: "project:launch"},
			false, "missing_scope", []string{"project:manage", "user:read"}, true,
			"the app requested project:manage, which would allow project:launch, but the user granted less: the token lacks it",
			"the user did not grant project:manage: degrade this feature, or send the user through consent again for project:launch, the narrowest"},
		{"narrowed picks the narrowest declined", engine.Input{GrantedScopes: []string{"project:read"}, RequestedScopes: []string{"project:manage", "project:launch"}, Action: "project:launch"},
			false, "missing_scope", []string{"project:launch", "project:manage"}, true, "", "send the user through consent again for project:launch"},
		{"not requested: the app never asked", engine.Input{GrantedScopes: []string{"project:write"}, RequestedScopes: []string{"project:write"}, Action: "project:launch"},
			false, "missing_scope", []string{}, false,
			"the app requested none of [project:launch project:manage]: it must ask for project:launch before the user can grant it",
			"request scope project:launch (narrowest)"},
		{"allowed despite a declined scope", engine.Input{GrantedScopes: []string{"project:write"}, RequestedScopes: []string{"project:write", "user:email"}, Action: "project:read"},
			true, "allowed", []string{"user:email"}, false, "requested but not granted: user:email", ""},
		{"implied counts as granted", engine.Input{GrantedScopes: []string{"project:write"}, RequestedScopes: []string{"project:read"}, Action: "project:read"},
			true, "allowed", []string{}, false, "", ""},
		{"no scopes granted at all", engine.Input{GrantedScopes: []string{}, RequestedScopes: []string{"user:read"}, Action: "profile.read"},
			false, "no_scopes", []string{"user:read"}, true, "", "the user did not grant user:read"},
		{"no requested scopes", engine.Input{GrantedScopes: []string{"project:write"}, Action: "project:launch"},
			false, "missing_scope", []string{}, false, "", "request scope project:launch"},
		{"unknown action is not narrowing", engine.Input{GrantedScopes: []string{"project:write"}, RequestedScopes: []string{"project:manage"}, Action: "project:explode"},
			false, "unknown_action", []string{"project:manage"}, false, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := e.DecideInput(context.Background(), tc.in, engine.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if d.Allow != tc.allow || d.Reason != tc.reason || !slices.Equal(d.RequestedNotGranted, tc.requestedNotGranted) || d.NarrowedByUser != tc.narrowed {
				t.Fatalf("got allow=%v reason=%s requested_not_granted=%v narrowed=%v; want %v %s %v %v\nexplain: %q",
					d.Allow, d.Reason, d.RequestedNotGranted, d.NarrowedByUser, tc.allow, tc.reason, tc.requestedNotGranted, tc.narrowed, d.Explain)
			}
			if tc.explain != "" && !slices.Contains(d.Explain, tc.explain) {
				t.Errorf("explain %q lacks %q", d.Explain, tc.explain)
			}
			if !strings.Contains(d.Remedy, tc.remedy) {
				t.Errorf("remedy %q lacks %q", d.Remedy, tc.remedy)
			}
		})
	}
}

// TestRequestedIsPartOfTheCacheKey: the same question with a different
// requested list is answered afresh, not from the cache.
func TestRequestedIsPartOfTheCacheKey(t *testing.T) {
	e := newEngine(t, repoSource(t))
	ctx := context.Background()
	in := engine.Input{GrantedScopes: []string{"project:write"}, Action: "project:launch"}
	first, _ := e.DecideInput(ctx, in, engine.Options{})
	in.RequestedScopes = []string{"project:launch"}
	second, _ := e.DecideInput(ctx, in, engine.Options{})
	if first.NarrowedByUser || !second.NarrowedByUser {
		t.Fatalf("narrowed: first %v, second %v", first.NarrowedByUser, second.NarrowedByUser)
	}
}

// TestHandBuiltDecisionDecodes is the control for TestFailClosed: a
// complete, consistent decision object is accepted, so each broken variant
// there fails for its own defect.
func TestHandBuiltDecisionDecodes(t *testing.T) {
	src := repoSource(t)
	src.Modules = map[string]string{"ok.rego": `package scopegate.authz

decision := {"allow": false, "reason": "missing_scope", "action": "", "route": "", "required_any_of": [], "granted_effective": [],
	"matched": [], "missing": [], "narrowest": "", "unknown_scopes": [], "sensitive": false, "explain": ["x"], "remedy": "",
	"requested_not_granted": ["project:launch"], "narrowed_by_user": true}
`}
	d, err := newEngine(t, src).DecideInput(context.Background(), engine.Input{GrantedScopes: []string{}, Action: "x"}, engine.Options{})
	if err != nil || d.Reason != "missing_scope" || !d.NarrowedByUser || !slices.Equal(d.RequestedNotGranted, []string{"project:launch"}) {
		t.Fatalf("got %+v, %v", d, err)
	}
}
