package bundle_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/scopegate/scopegate/internal/bundle"
	"github.com/scopegate/scopegate/internal/engine"
	"github.com/scopegate/scopegate/internal/server"
)

// swaps records every engine a manager hands over.
type swaps struct {
	mu      sync.Mutex
	engines []*engine.Engine
}

func (s *swaps) set(e *engine.Engine) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.engines = append(s.engines, e)
}

func (s *swaps) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.engines)
}

func newManager(t testing.TB, runTests bool) (*bundle.Manager, *prometheus.Registry, *swaps) {
	t.Helper()
	reg := prometheus.NewRegistry()
	sw := &swaps{}
	m := bundle.NewManager(bundle.ManagerOptions{OnActivate: sw.set, RunTests: runTests, Registerer: reg})
	return m, reg, sw
}

func watch(t testing.TB, location string, m *bundle.Manager, opts bundle.WatchOptions) *bundle.Watcher {
	t.Helper()
	w, err := bundle.NewWatcher(location, m, opts)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func TestManagerKeepsLastGood(t *testing.T) {
	ctx := context.Background()
	a := build(t, repoPolicies, nil)
	b := build(t, copyPolicies(t, revisionB), nil)
	dir, tgz := writeBundle(t, a)
	m, reg, sw := newManager(t, false)
	dirW := watch(t, dir, m, bundle.WatchOptions{})
	tarW := watch(t, tgz, m, bundle.WatchOptions{})

	if ok, err := dirW.Poll(ctx); !ok || err != nil {
		t.Fatalf("first load: %v %v", ok, err)
	}
	good := m.Engine()
	if good == nil || good.Revision() != a.Revision || sw.count() != 1 {
		t.Fatalf("engine %v after first load", good)
	}
	// Unchanged content is not reloaded.
	if ok, err := dirW.Poll(ctx); ok || err != nil {
		t.Fatalf("unchanged: %v %v", ok, err)
	}

	authz := filepath.Join(dir, "policies", "authz.rego")
	for _, tc := range []struct {
		name, stage, want string
		w                 *bundle.Watcher
		mutate            func()
	}{
		{"rego syntax error", bundle.StageRead, "rego_parse_error", dirW,
			func() { writeFile(t, authz, []byte("package scopegate.authz\n\ndecision := {\n")) }},
		{"compile error", bundle.StageCompile, "rego_unsafe_var_error", dirW,
			func() { appendTo(t, authz, "\nbroken := nowhere\n") }},
		{"decision not well formed", bundle.StageCompile, `decision lacks "reason"`, dirW,
			func() {
				writeFile(t, authz, []byte("package scopegate.authz\n\ndecision := {\"allow\": true}\n"))
			}},
		{"missing catalog data", bundle.StageValidate, "no data.scopegate", dirW,
			func() { os.Remove(filepath.Join(dir, "data.json")) }},
		{"catalog of the wrong shape", bundle.StageValidate, `scope "public": resource is not a string`, dirW,
			func() {
				writeFile(t, filepath.Join(dir, "data.json"), []byte(`{"scopegate":{"catalog":{"version":1,"default_scope":"public","scopes":{"public":{"description":"p","sensitive":false,"includes":[],"implies":["public"],"satisfied_by":["public"]}}}}}`))
			}},
		{"roots elsewhere", bundle.StageRead, "manifest roots", dirW,
			func() {
				writeFile(t, filepath.Join(dir, ".manifest"), []byte(`{"revision":"x","roots":["other"]}`))
			}},
		{"no authz policy", bundle.StageValidate, "no policy module has package scopegate.authz", dirW,
			func() { os.Remove(authz) }},
		{"corrupt tar", bundle.StageRead, "", tarW,
			func() { writeFile(t, tgz, []byte("this is not a gzip stream")) }},
		{"truncated tar", bundle.StageRead, "", tarW,
			func() { writeFile(t, tgz, a.TarGz[:len(a.TarGz)/2]) }},
		{"tar file gone", bundle.StageFetch, "no such file", tarW,
			func() { os.Remove(tgz) }},
	} {
		tc.mutate()
		ok, err := tc.w.Poll(ctx)
		if ok || err == nil {
			t.Fatalf("%s: activated", tc.name)
		}
		t.Logf("%s: %v", tc.name, err)
		if bundle.StageOf(err) != tc.stage || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %q (stage %q), want stage %q and %q", tc.name, err, bundle.StageOf(err), tc.stage, tc.want)
		}
		st := m.State()
		if m.Engine() != good || st.Revision != a.Revision {
			t.Fatalf("%s: the good engine was replaced", tc.name)
		}
		if st.LastError == nil || st.LastError.Stage != tc.stage || st.LastError.Source != tc.w.Origin() || st.LastError.Time.IsZero() {
			t.Errorf("%s: state %+v", tc.name, st.LastError)
		}
		// A refused bundle is not retried while it stays the same.
		if tc.stage != bundle.StageFetch {
			if ok, err := tc.w.Poll(ctx); ok || err != nil {
				t.Errorf("%s: second poll of the same content: %v %v", tc.name, ok, err)
			}
		}
		// Put the good bundle back (and remove what the case added).
		if _, err := a.Write(filepath.Dir(dir), bundle.DefaultName); err != nil {
			t.Fatal(err)
		}
		// (After a fetch error the content that comes back is the active
		// one, so there is nothing to reload.)
		if ok, err := tc.w.Poll(ctx); ok != (tc.stage != bundle.StageFetch) || err != nil {
			t.Fatalf("%s: restoring: %v %v", tc.name, ok, err)
		}
		good = m.Engine()
	}
	failures := m.State().Failures
	if failures != 10 {
		t.Errorf("%d failures recorded", failures)
	}

	// A good new revision replaces it and clears the error.
	if _, err := b.Write(filepath.Dir(dir), bundle.DefaultName); err != nil {
		t.Fatal(err)
	}
	if ok, err := dirW.Poll(ctx); !ok || err != nil {
		t.Fatalf("revision B: %v %v", ok, err)
	}
	st := m.State()
	if st.Revision != b.Revision || m.Engine().Revision() != b.Revision || st.LastError != nil || st.ActivatedAt == nil {
		t.Fatalf("state after B: %+v", st)
	}

	if got := metricValue(t, reg, "scopegate_bundle_revision_info", b.Revision); got != 1 {
		t.Errorf("revision_info{%s} = %v", b.Revision, got)
	}
	if n := count(t, reg, "scopegate_bundle_revision_info"); n != 1 {
		t.Errorf("%d revision_info series, want only the active one", n)
	}
	if got := metricValue(t, reg, "scopegate_bundle_loads_total", "failure"); got != float64(m.State().Failures) {
		t.Errorf("loads_total{failure} = %v, state says %d", got, m.State().Failures)
	}
	if got := metricValue(t, reg, "scopegate_bundle_loads_total", "success"); got != float64(m.State().Activations) {
		t.Errorf("loads_total{success} = %v, state says %d", got, m.State().Activations)
	}
	if got := metricValue(t, reg, "scopegate_bundle_load_failures_total", "compile"); got != 2 {
		t.Errorf("compile failures = %v", got)
	}
}

func TestManagerRunsPolicyTests(t *testing.T) {
	ctx := context.Background()
	m, _, _ := newManager(t, true)
	a := build(t, repoPolicies, nil)
	srcA, err := bundle.ReadTarGz(a.TarGz, bundle.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Activate(ctx, srcA, "a"); err != nil {
		t.Fatalf("the repo's own tests fail: %v", err)
	}
	// Revision B changes what project:read allows; the repo's route test
	// (project:read may GET /projects/7) now fails, so B is refused.
	b := build(t, copyPolicies(t, revisionB), nil)
	srcB, err := bundle.ReadTarGz(b.TarGz, bundle.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	err = m.Activate(ctx, srcB, "b")
	if bundle.StageOf(err) != bundle.StageTest || !strings.Contains(err.Error(), "Rego tests failed") || !strings.Contains(err.Error(), "data.scopegate.authz_test.test_route") {
		t.Fatalf("got %v", err)
	}
	if m.Engine().Revision() != a.Revision || m.State().LastError.Stage != bundle.StageTest {
		t.Fatalf("state %+v", m.State())
	}
	// Without --bundle-run-tests the same bundle is accepted.
	m2, _, _ := newManager(t, false)
	if err := m2.Activate(ctx, srcB, "b"); err != nil {
		t.Fatal(err)
	}
}

// TestNoGoodBundleDenies: with no bundle ever loaded the server is not
// ready, says why, and denies with policy_error.
func TestNoGoodBundleDenies(t *testing.T) {
	ctx := context.Background()
	m, _, _ := newManager(t, false)
	srv := server.New(nil, server.Options{Status: m.ReadyStatus})
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	p := filepath.Join(t.TempDir(), "scopegate.tar.gz")
	writeFile(t, p, []byte("not a bundle"))
	w := watch(t, p, m, bundle.WatchOptions{})
	if _, err := w.Poll(ctx); err == nil {
		t.Fatal("garbage accepted")
	}

	status, body := get(t, ts.URL+"/ready")
	if status != http.StatusServiceUnavailable || body["ready"] != false || !strings.HasPrefix(body["last_error"].(string), "read: ") {
		t.Fatalf("/ready %d %v", status, body)
	}
	det := body["bundle"].(map[string]any)
	if det["failures"].(float64) != 1 || det["last_error"].(map[string]any)["source"] != p {
		t.Errorf("details %v", det)
	}
	d := decide(t, ts.URL, `{"granted_scopes":["project:manage"],"action":"project:read"}`)
	if d.Allow || d.Reason != engine.ReasonPolicyError || d.BundleRevision != "" {
		t.Fatalf("decision without a policy: %+v", d)
	}

	// Then a good bundle arrives.
	a := build(t, repoPolicies, nil)
	writeFile(t, p, a.TarGz)
	mgr := bundle.NewManager(bundle.ManagerOptions{OnActivate: srv.SetEngine})
	if ok, err := watch(t, p, mgr, bundle.WatchOptions{}).Poll(ctx); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if d := decide(t, ts.URL, `{"granted_scopes":["project:manage"],"action":"project:read"}`); !d.Allow || d.BundleRevision != a.Revision {
		t.Fatalf("after a good bundle: %+v", d)
	}
}

type decision struct {
	Allow          bool   `json:"allow"`
	Reason         string `json:"reason"`
	BundleRevision string `json:"bundle_revision"`
}

func decide(t testing.TB, url, body string) decision {
	t.Helper()
	resp, err := http.Post(url+"/v1/decide", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var d decision
	if resp.StatusCode != 200 {
		raw, _ := io.ReadAll(resp.Body)
		t.Fatalf("status %d: %s", resp.StatusCode, raw)
	}
	if err := json.NewDecoder(resp.Body).Decode(&d); err != nil {
		t.Fatal(err)
	}
	return d
}

func get(t testing.TB, url string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, out
}

// metricValue reads the series of name that has a label with this value.
func metricValue(t *testing.T, reg *prometheus.Registry, name, label string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetValue() == label {
					return m.GetGauge().GetValue() + m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no %s{%s}", name, label)
	return 0
}

func count(t *testing.T, reg *prometheus.Registry, name string) int {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return len(mf.GetMetric())
		}
	}
	return 0
}

// TestActivationDeadline: with the decision deadline out of the way, a
// bundle whose smoke decision would run for hours is refused at
// --activation-timeout (ManagerOptions.ActivationTimeout), not waited for.
func TestActivationDeadline(t *testing.T) {
	const field = `"allow": allow,`
	wedged := build(t, copyPolicies(t, func(name, text string) string {
		if name != "authz.rego" {
			return text
		}
		if !strings.Contains(text, field) {
			t.Fatal("authz.rego no longer has " + field)
		}
		return strings.Replace(text, field, field+` "spin": spin,`, 1) +
			"\nspin := count([1 | some i in numbers.range(1, 100000); some j in numbers.range(1, 100000)])\n"
	}), nil)
	src, err := bundle.ReadTarGz(wedged.TarGz, bundle.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m := bundle.NewManager(bundle.ManagerOptions{ActivationTimeout: time.Second,
		EngineOptions: []engine.Option{engine.WithEvalTimeout(time.Hour)}})
	err = m.Activate(context.Background(), src, "wedged")
	// (Under load the deadline may pass while compiling or checking the
	// policy against the catalog, before the smoke decision.)
	if stage := bundle.StageOf(err); err == nil || stage != bundle.StageCompile && stage != bundle.StageValidate || !strings.Contains(err.Error(), "deadline") ||
		strings.Contains(err.Error(), "1h0m0s") || m.Engine() != nil {
		t.Fatalf("wedged bundle: %v (engine %v)", err, m.Engine())
	}
}
