package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/scopegate/scopegate/internal/decisionlog"
	"github.com/scopegate/scopegate/internal/engine"
	"github.com/scopegate/scopegate/internal/server"
	"github.com/scopegate/scopegate/internal/source"
)

// recordingLog keeps decision-log events in memory; err makes it fail.
type recordingLog struct {
	mu     sync.Mutex
	events []decisionlog.Event
	err    error
}

func (l *recordingLog) LogDurable(_ context.Context, ev decisionlog.Event) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		return l.err
	}
	// Input and Result are the server's to reuse once this returns
	// (DecisionLog): keeping them would show a later request's data.
	ev.Input, ev.Result = nil, nil
	l.events = append(l.events, ev)
	return nil
}

func (l *recordingLog) all() []decisionlog.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.events)
}

func repoEngine(t testing.TB) *engine.Engine {
	t.Helper()
	e, err := engine.New(context.Background(), repoSource(t))
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// repoSource is the repository's catalog and policies, to edit (see
// policyvariant) before building an engine.
func repoSource(t testing.TB) *source.Source {
	t.Helper()
	src, err := source.FromFiles("../../scopes.yaml", "../../policies")
	if err != nil {
		t.Fatal(err)
	}
	return src
}

type decideResponse struct {
	DecisionID          string   `json:"decision_id"`
	Allow               bool     `json:"allow"`
	Reason              string   `json:"reason"`
	Action              string   `json:"action"`
	Route               string   `json:"route"`
	Sensitive           bool     `json:"sensitive"`
	RequiredAnyOf       []string `json:"required_any_of"`
	GrantedEffective    []string `json:"granted_effective"`
	Matched             []string `json:"matched"`
	Missing             []string `json:"missing"`
	Narrowest           string   `json:"narrowest"`
	UnknownScopes       []string `json:"unknown_scopes"`
	Explain             []string `json:"explain"`
	Remedy              string   `json:"remedy"`
	RequestedNotGranted []string `json:"requested_not_granted"`
	NarrowedByUser      bool     `json:"narrowed_by_user"`
	Trace               []string `json:"trace"`
	WWWAuthenticate     string   `json:"www_authenticate"`
	BundleRevision      string   `json:"bundle_revision"`
	Policy              string   `json:"policy"`
	Error               *struct {
		Code, Message, Field string
	} `json:"error"`
}

func post(t *testing.T, url, body string) (int, decideResponse) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out decideResponse
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields() // the contract has no fields this test does not know
	if err := dec.Decode(&out); err != nil {
		t.Fatalf("decode %s: %v", raw, err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("content type %q", ct)
	}
	return resp.StatusCode, out
}

func start(t *testing.T, eng *engine.Engine, log server.DecisionLog) string {
	t.Helper()
	return newTestServer(t, server.New(eng, server.Options{Log: log}))
}

func newTestServer(t testing.TB, h http.Handler) string {
	t.Helper()
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	return ts.URL
}

func TestDecideEndToEnd(t *testing.T) {
	log := &recordingLog{}
	eng := repoEngine(t)
	url := start(t, eng, log) + "/v1/decide"
	for _, tc := range []struct {
		name     string
		body     string
		allow    bool
		reason   string
		missing  []string
		remedy   string
		explain0 string
	}{
		{"manage allows launch", `{"subject":"app:bot","client_id":"c1","granted_scopes":["project:manage"],"action":"project:launch"}`, true, "allowed", []string{}, "", "action project:launch requires one of [project:launch project:manage]"},
		{"write allows read", `{"granted_scopes":["project:write"],"action":"project:read"}`, true, "allowed", []string{}, "", ""},
		{"write does not allow launch", `{"granted_scopes":"user:read project:write","action":"project:launch"}`, false, "missing_scope", []string{"project:launch"}, "project:launch", ""},
		{"user:manage reads email", `{"granted_scopes":["user:manage"],"action":"user:email"}`, true, "allowed", []string{}, "", ""},
		{"empty scopes act as public", `{"granted_scopes":[],"action":"public"}`, true, "allowed", []string{}, "", ""},
		{"empty scope string acts as public", `{"scope":"","method":"GET","path":"/languages"}`, true, "allowed", []string{}, "", "route GET /languages matches action catalog.read"},
		{"no scopes beyond public", `{"action":"user:read"}`, false, "no_scopes", []string{"user:read"}, "user:read", ""},
		{"unknown scope named", `{"granted_scopes":["project:manage","project:destroy"],"action":"project:read"}`, false, "unknown_scope", []string{}, "project:destroy", ""},
		{"unknown action", `{"granted_scopes":["project:manage"],"action":"project:explode"}`, false, "unknown_action", []string{}, "", ""},
		{"route", `{"granted_scopes":["project:manage"],"method":"POST","path":"/projects/42/launch"}`, true, "allowed", []string{}, "", "route POST /projects/{id}/launch matches action project.launch"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, d := post(t, url, tc.body)
			if status != http.StatusOK {
				t.Fatalf("status %d: %+v", status, d.Error)
			}
			if d.Allow != tc.allow || d.Reason != tc.reason || !slices.Equal(d.Missing, tc.missing) {
				t.Fatalf("got allow=%v reason=%s missing=%v; want %v %s %v (explain %q)", d.Allow, d.Reason, d.Missing, tc.allow, tc.reason, tc.missing, d.Explain)
			}
			if tc.remedy != "" && !strings.Contains(d.Remedy, tc.remedy) {
				t.Errorf("remedy %q does not name %s", d.Remedy, tc.remedy)
			}
			if tc.explain0 != "" && (len(d.Explain) == 0 || d.Explain[0] != tc.explain0) {
				t.Errorf("explain = %q, want first line %q", d.Explain, tc.explain0)
			}
			if d.DecisionID == "" || d.BundleRevision != eng.Revision() || d.Policy != "data.scopegate.authz" {
				t.Errorf("id=%q revision=%q policy=%q", d.DecisionID, d.BundleRevision, d.Policy)
			}
		})
	}
	// Every answered decision is in the log, with its id and outcome.
	events := log.all()
	if len(events) != 10 {
		t.Fatalf("logged %d decisions, want 10", len(events))
	}
	if ev := events[0]; ev.Subject != "app:bot" || ev.ClientID != "c1" || !ev.Allow || ev.Reason != "allowed" ||
		ev.Bundles["scopegate"].Revision != eng.Revision() || ev.DecisionID == "" {
		t.Errorf("first record = %+v", ev)
	}
}

func TestExplainFull(t *testing.T) {
	url := start(t, repoEngine(t), &recordingLog{})
	status, d := post(t, url+"/v1/decide?explain=full", `{"granted_scopes":["user:read"],"action":"user:read"}`)
	if status != 200 || !d.Allow || len(d.Trace) < 10 {
		t.Fatalf("status %d allow %v, %d trace lines", status, d.Allow, len(d.Trace))
	}
	status, d = post(t, url+"/v1/decide?explain=loud", `{"granted_scopes":["user:read"],"action":"user:read"}`)
	if status != 400 || d.Error.Field != "explain" {
		t.Fatalf("status %d, error %+v", status, d.Error)
	}
}

func TestBadInput(t *testing.T) {
	log := &recordingLog{}
	url := start(t, repoEngine(t), log) + "/v1/decide"
	for _, tc := range []struct {
		name, body string
		status     int
		field      string
	}{
		{"malformed", `{"granted_scopes":`, 400, ""},
		{"unknown field", `{"action":"x","scopes":[]}`, 400, "scopes"},
		{"wrong type", `{"action":["x"]}`, 400, "action"},
		{"scope list type", `{"action":"x","granted_scopes":[1]}`, 400, "granted_scopes[0]"},
		{"malformed scope string", `{"action":"x","granted_scopes":"a  b"}`, 400, "granted_scopes"},
		{"no action", `{"granted_scopes":["a"]}`, 400, "action"},
		{"too large", `{"action":"x","context":{"k":"` + strings.Repeat("x", 70000) + `"}}`, 413, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, d := post(t, url, tc.body)
			if status != tc.status || d.Error == nil || d.Error.Field != tc.field || d.Error.Message == "" {
				t.Fatalf("status %d error %+v; want %d naming %q", status, d.Error, tc.status, tc.field)
			}
			if d.Allow {
				t.Fatal("an error answer carries allow")
			}
		})
	}
	// Rejected requests are recorded too, as invalid_input denials.
	for _, ev := range log.all() {
		if ev.Allow || ev.Reason != "invalid_input" {
			t.Errorf("record %+v", ev)
		}
	}
	if n := len(log.all()); n != 7 {
		t.Errorf("logged %d rejected requests, want 7", n)
	}
}

func TestNoEngineDenies(t *testing.T) {
	url := start(t, nil, &recordingLog{})
	status, d := post(t, url+"/v1/decide", `{"granted_scopes":["project:manage"],"action":"project:read"}`)
	if status != 200 || d.Allow || d.Reason != "policy_error" {
		t.Fatalf("status %d, %+v", status, d)
	}
	resp, err := http.Get(url + "/ready")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("/ready = %d with no engine", resp.StatusCode)
	}
}

// TestEngineErrorIsDeny: a policy that fails at evaluation time answers a
// deny with policy_error, status 200, never an allow or a 500.
func TestEngineErrorIsDeny(t *testing.T) {
	src, err := source.FromFiles("../../scopes.yaml", "../../policies")
	if err != nil {
		t.Fatal(err)
	}
	src.Modules["conflict.rego"] = "package scopegate.authz\n\nreason := \"allowed\" if input.action == \"project:read\"\n"
	eng, err := engine.New(context.Background(), src)
	if err != nil {
		t.Fatal(err)
	}
	log := &recordingLog{}
	url := start(t, eng, log)
	status, d := post(t, url+"/v1/decide", `{"granted_scopes":["user:read"],"action":"project:read"}`)
	if status != 200 || d.Allow || d.Reason != "policy_error" || len(d.Explain) == 0 {
		t.Fatalf("status %d, %+v", status, d)
	}
	if ev := log.all(); len(ev) != 1 || ev[0].Allow || ev[0].Reason != "policy_error" {
		t.Fatalf("logged %+v", ev)
	}
}

// TestLogFailureDenies: an allow that cannot be recorded is not served.
func TestLogFailureDenies(t *testing.T) {
	url := start(t, repoEngine(t), &recordingLog{err: errors.New("disk full")})
	status, d := post(t, url+"/v1/decide", `{"granted_scopes":["project:manage"],"action":"project:read"}`)
	if status != 200 || d.Allow || d.Reason != "log_unavailable" {
		t.Fatalf("status %d, %+v", status, d)
	}
}

func TestHealthReadyMetrics(t *testing.T) {
	eng := repoEngine(t)
	url := start(t, eng, &recordingLog{})
	post(t, url+"/v1/decide", `{"granted_scopes":["project:manage"],"action":"project:read"}`)
	for path, want := range map[string]string{
		"/health":  `"status":"ok"`,
		"/ready":   `"bundle_revision":"` + eng.Revision() + `"`,
		"/metrics": `scopegate_decisions_total{allow="true",reason="allowed"} 1`,
	} {
		resp, err := http.Get(url + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), want) {
			t.Errorf("%s: %d %s; want %s", path, resp.StatusCode, body, want)
		}
	}
	resp, err := http.Get(url + "/v1/decide")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET /v1/decide = %d", resp.StatusCode)
	}
}

// TestConcurrentDecisions: the prepared query is shared safely.
func TestConcurrentDecisions(t *testing.T) {
	log := &recordingLog{}
	url := start(t, repoEngine(t), log) + "/v1/decide"
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				body := `{"granted_scopes":["project:write"],"action":"project:launch"}`
				wantAllow := false
				if i%2 == 0 {
					body, wantAllow = `{"granted_scopes":["project:manage"],"action":"project:launch"}`, true
				}
				resp, err := http.Post(url, "application/json", strings.NewReader(body))
				if err != nil {
					t.Error(err)
					return
				}
				var d decideResponse
				err = json.NewDecoder(resp.Body).Decode(&d)
				resp.Body.Close()
				if err != nil || d.Allow != wantAllow {
					t.Errorf("allow=%v want %v (%v)", d.Allow, wantAllow, err)
				}
			}
		}()
	}
	wg.Wait()
	if n := len(log.all()); n != 160 {
		t.Fatalf("logged %d, want 160", n)
	}
}

type panickingLog struct{}

func (panickingLog) LogDurable(context.Context, decisionlog.Event) error { panic("log exploded") }

// TestPanicIsDeny: a panic on the decision path is recovered into a deny
// with reason policy_error and status 200, never a 500 or a dropped
// connection a caller might misread.
func TestPanicIsDeny(t *testing.T) {
	url := start(t, repoEngine(t), panickingLog{})
	status, d := post(t, url+"/v1/decide", `{"granted_scopes":["project:manage"],"action":"project:read"}`)
	if status != 200 || d.Allow || d.Reason != "policy_error" || d.DecisionID == "" {
		t.Fatalf("status %d, %+v", status, d)
	}
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "scopegate_panics_total 1") {
		t.Error("panic not counted")
	}
}
