package engine_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/scopegate/scopegate/internal/engine"
	"github.com/scopegate/scopegate/internal/source"
)

func repoSource(t testing.TB) *source.Source {
	t.Helper()
	src, err := source.FromFiles("../../scopes.yaml", "../../policies")
	if err != nil {
		t.Fatal(err)
	}
	return src
}

func newEngine(t testing.TB, src *source.Source) *engine.Engine {
	t.Helper()
	e, err := engine.New(context.Background(), src)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestDecide(t *testing.T) {
	e := newEngine(t, repoSource(t))
	for _, tc := range []struct {
		name      string
		in        engine.Input
		allow     bool
		reason    string
		missing   []string
		narrowest string
	}{
		{"manage allows launch", engine.Input{GrantedScopes: []string{"project:manage"}, Action: "project:launch"}, true, "allowed", []string{}, "project:launch"},
		{"write allows read", engine.Input{GrantedScopes: []string{"project:write"}, Action: "project:read"}, true, "allowed", []string{}, "project:read"},
		{"write denies launch", engine.Input{GrantedScopes: []string{"project:write"}, Action: "project:launch"}, false, "missing_scope", []string{"project:launch"}, "project:launch"},
		{"user:manage reads email", engine.Input{GrantedScopes: []string{"user:manage"}, Action: "user:email"}, true, "allowed", []string{}, "user:email"},
		{"empty is public", engine.Input{GrantedScopes: []string{}, Action: "public"}, true, "allowed", []string{}, "public"},
		{"empty denied beyond public", engine.Input{GrantedScopes: []string{}, Action: "user:read"}, false, "no_scopes", []string{"user:read"}, "user:read"},
		{"unknown scope", engine.Input{GrantedScopes: []string{"project:manage", "project:nuke"}, Action: "project:read"}, false, "unknown_scope", []string{}, "project:read"},
		{"unknown action", engine.Input{GrantedScopes: []string{"project:manage"}, Action: "project:nuke"}, false, "unknown_action", []string{}, ""},
		{"route", engine.Input{GrantedScopes: []string{"project:launch"}, Method: "POST", Path: "/projects/1/launch"}, true, "allowed", []string{}, "project:launch"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := e.DecideInput(context.Background(), tc.in, engine.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if d.Allow != tc.allow || d.Reason != tc.reason || !slices.Equal(d.Missing, tc.missing) || d.Narrowest != tc.narrowest {
				t.Errorf("got allow=%v reason=%s missing=%v narrowest=%q; want %v %s %v %q\nexplain: %v",
					d.Allow, d.Reason, d.Missing, d.Narrowest, tc.allow, tc.reason, tc.missing, tc.narrowest, d.Explain)
			}
			if len(d.Explain) == 0 {
				t.Error("no explanation")
			}
		})
	}
}

func TestTrace(t *testing.T) {
	e := newEngine(t, repoSource(t))
	d, err := e.DecideInput(context.Background(), engine.Input{GrantedScopes: []string{"user:read"}, Action: "user:read"}, engine.Options{Trace: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Trace) < 10 || !strings.Contains(strings.Join(d.Trace, "\n"), "data.scopegate.authz.decision") {
		t.Fatalf("trace looks empty: %q", d.Trace)
	}
	// A traced evaluation does not leave tracing on for the next one.
	d, _ = e.DecideInput(context.Background(), engine.Input{GrantedScopes: []string{"user:read"}, Action: "user:read"}, engine.Options{})
	if d.Trace != nil {
		t.Fatal("trace on an untraced decision")
	}
}

// TestFailClosed: whatever goes wrong in the policy, the answer is a deny
// with reason policy_error and an error for the operator.
func TestFailClosed(t *testing.T) {
	for _, tc := range []struct {
		name, module string
	}{
		{"undefined decision", "package scopegate.authz\n\nother := true\n"},
		{"conflict at runtime", "package scopegate.authz\n\ndecision := {\"allow\": true} if input.action\n\ndecision := {\"allow\": false} if input.action\n"},
		{"not an object", "package scopegate.authz\n\ndecision := true\n"},
		{"allow without reason", "package scopegate.authz\n\ndecision := {\"allow\": true}\n"},
		{"allow contradicting reason", `package scopegate.authz

decision := {"allow": true, "reason": "missing_scope", "action": "", "route": "", "required_any_of": [], "granted_effective": [],
	"matched": [], "missing": [], "narrowest": "", "unknown_scopes": [], "sensitive": false, "explain": [], "remedy": "",
	"requested_not_granted": [], "narrowed_by_user": false}
`},
		{"mistyped field", `package scopegate.authz

decision := {"allow": "yes", "reason": "allowed", "action": "", "route": "", "required_any_of": [], "granted_effective": [],
	"matched": [], "missing": [], "narrowest": "", "unknown_scopes": [], "sensitive": false, "explain": [], "remedy": "",
	"requested_not_granted": [], "narrowed_by_user": false}
`},
		{"allow narrowed by the user", `package scopegate.authz

decision := {"allow": true, "reason": "allowed", "action": "", "route": "", "required_any_of": [], "granted_effective": [],
	"matched": [], "missing": [], "narrowest": "", "unknown_scopes": [], "sensitive": false, "explain": [], "remedy": "",
	"requested_not_granted": ["project:read"], "narrowed_by_user": true}
`},
		{"mistyped requested_not_granted", `package scopegate.authz

decision := {"allow": true, "reason": "allowed", "action": "", "route": "", "required_any_of": [], "granted_effective": [],
	"matched": [], "missing": [], "narrowest": "", "unknown_scopes": [], "sensitive": false, "explain": [], "remedy": "",
	"requested_not_granted": "project:read", "narrowed_by_user": false}
`},
		{"lacks a core field (explain)", `package scopegate.authz

decision := {"allow": true, "reason": "allowed", "action": "", "route": "", "required_any_of": [], "granted_effective": [],
	"matched": [], "missing": [], "narrowest": "", "unknown_scopes": [], "sensitive": false, "remedy": ""}
`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := repoSource(t)
			src.Modules = map[string]string{"broken.rego": tc.module}
			e := newEngine(t, src)
			d, err := e.DecideInput(context.Background(), engine.Input{GrantedScopes: []string{"project:manage"}, Action: "project:read"}, engine.Options{})
			if err == nil {
				t.Error("want an error for the operator")
			}
			if d.Allow || d.Reason != engine.ReasonPolicyError || len(d.Explain) == 0 {
				t.Fatalf("got %+v, want a policy_error deny", d)
			}
		})
	}
}

func TestNilEngineDenies(t *testing.T) {
	var e *engine.Engine
	d, err := e.Decide(context.Background(), ast.NewObject(), engine.Options{})
	if err == nil || d.Allow || d.Reason != engine.ReasonPolicyError {
		t.Fatalf("got %+v, %v", d, err)
	}
}

func TestCompileErrorAtNew(t *testing.T) {
	src := repoSource(t)
	src.Modules = map[string]string{"bad.rego": "package scopegate.authz\n\ndecision := {\n"}
	if _, err := engine.New(context.Background(), src); err == nil {
		t.Fatal("want a compile error")
	}
}

// BenchmarkDecide: one embedded decision with the prepared query, typical
// token of 4 scopes. "evaluate" runs OPA every time (cache off); "cached"
// is the steady state of a service asking the same questions again.
func BenchmarkDecide(b *testing.B) {
	src := repoSource(b)
	ctx := context.Background()
	for _, mode := range []struct {
		name string
		opts []engine.Option
	}{
		{"evaluate", []engine.Option{engine.WithCacheBytes(0)}},
		{"cached", nil},
	} {
		e, err := engine.New(ctx, src, mode.opts...)
		if err != nil {
			b.Fatal(err)
		}
		for _, bc := range []struct {
			name string
			in   engine.Input
		}{
			{"action_allow", engine.Input{GrantedScopes: []string{"user:read", "user:email", "project:write", "glossary:read"}, Action: "project:read"}},
			{"action_deny", engine.Input{GrantedScopes: []string{"user:read", "user:email", "project:write", "glossary:read"}, Action: "project:launch"}},
			{"route_allow", engine.Input{GrantedScopes: []string{"user:read", "user:email", "project:manage", "glossary:read"}, Method: "POST", Path: "/projects/42/launch"}},
		} {
			b.Run(mode.name+"/"+bc.name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					d, err := e.DecideInput(ctx, bc.in, engine.Options{})
					if err != nil || d.Reason == "" {
						b.Fatal(d, err)
					}
				}
			})
		}
	}
}

// TestPolicyWithoutRequestedFields: a policy written before the
// requested-vs-granted fields existed still decides (they are additions to
// the contract), and its allow stays an allow.
func TestPolicyWithoutRequestedFields(t *testing.T) {
	src := repoSource(t)
	src.Modules = map[string]string{"old.rego": `package scopegate.authz

decision := {"allow": true, "reason": "allowed", "action": "user:read", "route": "", "required_any_of": ["user:read"],
	"granted_effective": ["user:read"], "matched": ["user:read"], "missing": [], "narrowest": "user:read",
	"unknown_scopes": [], "sensitive": false, "explain": ["old policy"], "remedy": ""}
`}
	e := newEngine(t, src)
	d, err := e.DecideInput(context.Background(), engine.Input{GrantedScopes: []string{"user:read"}, Action: "user:read"}, engine.Options{})
	if err != nil || !d.Allow || d.RequestedNotGranted == nil || d.NarrowedByUser {
		t.Fatalf("got %+v, %v", d, err)
	}
}
