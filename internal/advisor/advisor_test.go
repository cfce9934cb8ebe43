package advisor_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/scopegate/scopegate/internal/advisor"
	"github.com/scopegate/scopegate/internal/decisionlog"
	"github.com/scopegate/scopegate/internal/engine"
)

var t0 = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

// named mimics policies/actions.rego for the small catalog.
var named = map[string][]string{
	"doc.list":   {"doc:read"},
	"doc.edit":   {"doc:write"},
	"doc.delete": {"doc:delete"},
	"pay":        {"pay:send"},
}

// decide builds the record the server would log for this token and action,
// deciding as policies/authz.rego does: the action needs one of the scopes
// that satisfy its any_of, narrowest first. The result goes through JSON so
// the advisor reads it as it reads a log line.
func decide(t *testing.T, cat *engine.CatalogView, i int, client string, granted []string, action string) decisionlog.Event {
	t.Helper()
	anyOf := named[action]
	if anyOf == nil {
		anyOf = []string{action}
	}
	var required []string
	for _, s := range anyOf {
		info, ok := cat.Lookup(s)
		if !ok {
			t.Fatalf("test action %s names unknown scope %s", action, s)
		}
		required = append(required, info.SatisfiedBy...)
	}
	matched := []string{}
	for _, s := range required {
		if slices.Contains(granted, s) {
			matched = append(matched, s)
		}
	}
	unknown := slices.ContainsFunc(granted, func(s string) bool { _, ok := cat.Lookup(s); return !ok })
	allow := len(matched) > 0 && !unknown
	reason, missing, narrowest := "allowed", []string{}, ""
	switch {
	case unknown:
		reason, matched = "unknown_scope", []string{}
	case !allow:
		reason, missing, narrowest = "missing_scope", []string{required[0]}, required[0]
	}
	res := map[string]any{"allow": allow, "reason": reason, "action": action, "required_any_of": required,
		"matched": matched, "missing": missing, "narrowest": narrowest}
	in := map[string]any{"granted_scopes": granted, "action": action, "client_id": client, "subject": "user:" + client}
	ev := decisionlog.Event{
		DecisionID: "d", Timestamp: t0.Add(time.Duration(i) * time.Minute),
		Input: roundTrip(t, in), Result: roundTrip(t, res),
		Reason: reason, Subject: "user:" + client, ClientID: client, Allow: allow,
	}
	return ev
}

func roundTrip(t *testing.T, v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

type call struct {
	granted []string
	action  string
}

func TestAdvise(t *testing.T) {
	cat, err := advisor.CatalogFile("testdata/small.yaml")
	if err != nil {
		t.Fatal(err)
	}
	g := func(s ...string) []string { return s }
	for _, tc := range []struct {
		name   string
		calls  []call
		needed []string
		unused []string
		excess []string
		// over-broad scope -> the needed scopes that would have done
		overBroad       map[string][]string
		sensitiveExcess []string
		leastPrivilege  bool
		allowed, denied int
		finding         string // a substring of the first finding
	}{
		{
			name:   "manage used only to read",
			calls:  []call{{g("doc:manage"), "doc.list"}, {g("doc:manage"), "doc:read"}},
			needed: g("doc:read"), unused: g(), excess: g("doc:delete", "doc:manage", "doc:write"),
			overBroad: map[string][]string{"doc:manage": g("doc:read")}, allowed: 2,
			finding: `request "doc:read" instead`,
		},
		{
			name:   "read and write needed: write suffices",
			calls:  []call{{g("doc:read", "doc:write"), "doc.list"}, {g("doc:read", "doc:write"), "doc.edit"}},
			needed: g("doc:write"), unused: g(), excess: g(), overBroad: map[string][]string{},
			leastPrivilege: true, allowed: 2, finding: "least privilege",
		},
		{
			name: "manage used across its resource narrows to the scopes used",
			calls: []call{{g("doc:manage"), "doc.list"}, {g("doc:manage"), "doc.edit"}, {g("doc:manage"), "doc.delete"},
				{g("doc:manage"), "doc.delete"}},
			needed: g("doc:delete", "doc:write"), unused: g(), excess: g("doc:manage"),
			overBroad: map[string][]string{"doc:manage": g("doc:delete", "doc:write")}, allowed: 4,
		},
		{
			name:   "unused sensitive grant",
			calls:  []call{{g("doc:read", "pay:send"), "doc.list"}},
			needed: g("doc:read"), unused: g("pay:send"), excess: g("pay:send"), overBroad: map[string][]string{},
			sensitiveExcess: g("pay:send"), allowed: 1,
		},
		{
			name:   "grants vary per token: the union is judged",
			calls:  []call{{g("doc:read"), "doc.list"}, {g("user:read"), "user:read"}, {g("doc:write", "user:read"), "doc.list"}},
			needed: g("doc:read", "user:read"), unused: g(), excess: g("doc:write"),
			overBroad: map[string][]string{"doc:write": g("doc:read")}, allowed: 3,
		},
		{
			name:   "a scope used where a narrower granted one also matched",
			calls:  []call{{g("doc:read", "doc:manage"), "doc.list"}},
			needed: g("doc:read"), unused: g(), excess: g("doc:delete", "doc:manage", "doc:write"),
			overBroad: map[string][]string{"doc:manage": g("doc:read")}, allowed: 1,
		},
		{
			name:   "only denials: nothing needed",
			calls:  []call{{g("doc:read"), "doc.edit"}, {g("doc:read"), "doc.edit"}, {g("doc:read"), "pay"}},
			needed: g(), unused: g("doc:read"), excess: g("doc:read"), overBroad: map[string][]string{},
			denied: 3, finding: "no allowed decision",
		},
		{
			name:   "an unknown granted scope confers nothing but is not least privilege",
			calls:  []call{{g("doc:read", "doc:purge"), "doc.list"}, {g("doc:read"), "doc.list"}},
			needed: g("doc:read"), unused: g("doc:purge"), excess: g(), overBroad: map[string][]string{},
			allowed: 1, denied: 1, finding: `request "doc:read" instead: it would still allow every allowed decision`,
		},
		{
			name:   "denials do not widen the recommendation",
			calls:  []call{{g("doc:read"), "doc.list"}, {g("doc:read"), "doc.delete"}},
			needed: g("doc:read"), unused: g(), excess: g(), overBroad: map[string][]string{},
			leastPrivilege: true, allowed: 1, denied: 1,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := advisor.New(cat, time.Time{}, time.Time{})
			for i, c := range tc.calls {
				a.Add(decide(t, cat, i, "app1", c.granted, c.action))
			}
			r := a.Report()
			if len(r.Clients) != 1 || r.Records != len(tc.calls) {
				t.Fatalf("report %+v", r)
			}
			c := r.Clients[0]
			if !slices.Equal(c.Needed, tc.needed) || c.Recommended != strings.Join(tc.needed, " ") {
				t.Errorf("needed %v (%q), want %v", c.Needed, c.Recommended, tc.needed)
			}
			if !slices.Equal(c.Unused, tc.unused) {
				t.Errorf("unused %v, want %v", c.Unused, tc.unused)
			}
			if !slices.Equal(c.Excess, tc.excess) {
				t.Errorf("excess %v, want %v", c.Excess, tc.excess)
			}
			if c.SensitiveExcess == nil || !slices.Equal(c.SensitiveExcess, append([]string{}, tc.sensitiveExcess...)) {
				t.Errorf("sensitive excess %v, want %v", c.SensitiveExcess, tc.sensitiveExcess)
			}
			ob := map[string][]string{}
			for _, o := range c.OverBroad {
				ob[o.Scope] = o.Narrower
				if o.Manage != strings.HasSuffix(o.Scope, ":manage") || len(o.UsedFor) == 0 {
					t.Errorf("over-broad %+v", o)
				}
			}
			if len(ob) != len(tc.overBroad) {
				t.Errorf("over-broad %v, want %v", ob, tc.overBroad)
			}
			for s, n := range tc.overBroad {
				if !slices.Equal(ob[s], n) {
					t.Errorf("over-broad %s narrower %v, want %v", s, ob[s], n)
				}
			}
			if c.LeastPrivilege != tc.leastPrivilege || c.Allowed != tc.allowed || c.Denied != tc.denied || c.Decisions != len(tc.calls) {
				t.Errorf("least privilege %v allowed %d denied %d decisions %d", c.LeastPrivilege, c.Allowed, c.Denied, c.Decisions)
			}
			if len(c.Findings) == 0 || !strings.Contains(c.Findings[0], tc.finding) {
				t.Errorf("findings %q, want first to contain %q", c.Findings, tc.finding)
			}
		})
	}
}

func TestAdviseDetails(t *testing.T) {
	cat, err := advisor.CatalogFile("testdata/small.yaml")
	if err != nil {
		t.Fatal(err)
	}
	a := advisor.New(cat, t0, t0.Add(time.Hour))
	a.Add(decide(t, cat, 0, "b-app", []string{"doc:manage"}, "doc.list"))
	a.Add(decide(t, cat, 1, "a-app", []string{"doc:read"}, "doc.list"))
	a.Add(decide(t, cat, 2, "a-app", []string{"doc:read"}, "doc.list"))
	a.Add(decide(t, cat, 3, "a-app", []string{"doc:read"}, "doc.edit"))
	a.Add(decisionlog.Event{Timestamp: t0.Add(4 * time.Minute), Reason: "invalid_input", Input: map[string]any{"error": "bad"}})
	r := a.Report()
	if r.Records != 5 || r.Unattributed != 1 || len(r.Clients) != 2 || r.Clients[0].ClientID != "a-app" || r.Clients[1].ClientID != "b-app" {
		t.Fatalf("report %+v", r)
	}
	if !r.FirstSeen.Equal(t0) || !r.LastSeen.Equal(t0.Add(4*time.Minute)) || !r.From.Equal(t0) || !r.To.Equal(t0.Add(time.Hour)) {
		t.Errorf("times %v %v %v %v", r.FirstSeen, r.LastSeen, r.From, r.To)
	}
	c := r.Clients[0]
	if len(c.Actions) != 1 || c.Actions[0].Action != "doc.list" || c.Actions[0].Count != 2 || c.Actions[0].Narrowest != "doc:read" ||
		!slices.Equal(c.Actions[0].Matched, []string{"doc:read"}) {
		t.Errorf("actions %+v", c.Actions)
	}
	if len(c.Missing) != 1 || c.Missing[0] != (advisor.Missing{Action: "doc.edit", Reason: "missing_scope", Count: 1, Scope: "doc:write"}) {
		t.Errorf("missing %+v", c.Missing)
	}
	if !slices.Equal(c.Subjects, []string{"user:a-app"}) || c.SubjectCount != 1 || !c.FirstSeen.Equal(t0.Add(time.Minute)) || !c.LastSeen.Equal(t0.Add(3*time.Minute)) {
		t.Errorf("client %+v", c)
	}
	if !slices.ContainsFunc(c.Findings, func(f string) bool { return strings.Contains(f, "denied doc.edit 1 time(s): it lacked doc:write") }) {
		t.Errorf("findings %q", c.Findings)
	}

	// The same JSON an API or --json caller gets: lists are never null.
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "null") {
		t.Errorf("null in %s", b)
	}
}

func TestAdviseEngineDecisionResult(t *testing.T) {
	cat, err := advisor.CatalogFile("testdata/small.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// Records handed over in memory keep the engine's Decision as result.
	ev := decisionlog.Event{Timestamp: t0, ClientID: "c", Allow: true, Reason: "allowed",
		Input:  map[string]any{"granted_scopes": []string{"doc:write"}},
		Result: engine.Decision{Allow: true, Reason: "allowed", Action: "doc.list", RequiredAnyOf: []string{"doc:read", "doc:write", "doc:manage"}, Matched: []string{"doc:write"}}}
	r := advisor.New(cat, time.Time{}, time.Time{})
	r.Add(ev)
	c := r.Report().Clients[0]
	if !slices.Equal(c.Needed, []string{"doc:read"}) || !slices.Equal(c.Excess, []string{"doc:write"}) || len(c.OverBroad) != 1 {
		t.Errorf("%+v", c)
	}
}

func TestCatalogFileErrors(t *testing.T) {
	if _, err := advisor.CatalogFile("testdata/none.yaml"); err == nil {
		t.Fatal("want an error for a missing catalog")
	}
}
