package bundle_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scopegate/scopegate/internal/bundle"
)

// bundleServer serves one bundle the way an OPA bundle server does: with an
// ETag, answering 304 to a matching If-None-Match.
type bundleServer struct {
	mu       sync.Mutex
	body     []byte
	status   int           // non-zero: answer this instead
	delay    time.Duration // sleep before answering
	token    string        // required bearer token, if set
	requests int
	notMod   int
	ts       *httptest.Server
}

func newBundleServer(t *testing.T, body []byte) *bundleServer {
	s := &bundleServer{body: body}
	s.ts = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.ts.Close)
	return s
}

func (s *bundleServer) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests++
	body, status, delay, token := s.body, s.status, s.delay, s.token
	s.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	if token != "" && r.Header.Get("Authorization") != "Bearer "+token {
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	if status != 0 {
		http.Error(w, "down", status)
		return
	}
	sum := sha256.Sum256(body)
	etag := `"` + hex.EncodeToString(sum[:8]) + `"`
	w.Header().Set("ETag", etag)
	if r.Header.Get("If-None-Match") == etag {
		s.mu.Lock()
		s.notMod++
		s.mu.Unlock()
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("Content-Type", "application/gzip")
	_, _ = w.Write(body)
}

func (s *bundleServer) set(f func(s *bundleServer)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s)
}

func (s *bundleServer) counts() (requests, notModified int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests, s.notMod
}

func TestHTTPSource(t *testing.T) {
	ctx := context.Background()
	a := build(t, repoPolicies, nil)
	b := build(t, copyPolicies(t, revisionB), nil)
	srv := newBundleServer(t, a.TarGz)
	srv.set(func(s *bundleServer) { s.token = "s3cret" })
	m, _, _ := newManager(t, false)
	w := watch(t, srv.ts.URL+"/bundles/scopegate.tar.gz?token=hidden", m, bundle.WatchOptions{BearerToken: "s3cret", Timeout: 2 * time.Second})
	if strings.Contains(w.Origin(), "hidden") {
		t.Errorf("origin shows the query: %s", w.Origin())
	}

	if ok, err := w.Poll(ctx); !ok || err != nil {
		t.Fatalf("first fetch: %v %v", ok, err)
	}
	if m.State().Revision != a.Revision || m.State().Source != w.Origin() {
		t.Fatalf("state %+v", m.State())
	}
	// Unchanged: the server answers 304 and nothing is reloaded.
	for range 3 {
		if ok, err := w.Poll(ctx); ok || err != nil {
			t.Fatalf("unchanged: %v %v", ok, err)
		}
	}
	if req, nm := srv.counts(); req != 4 || nm != 3 {
		t.Fatalf("%d requests, %d answered 304", req, nm)
	}

	// A new revision is picked up.
	srv.set(func(s *bundleServer) { s.body = b.TarGz })
	if ok, err := w.Poll(ctx); !ok || err != nil {
		t.Fatalf("new revision: %v %v", ok, err)
	}
	if m.Engine().Revision() != b.Revision {
		t.Fatalf("serving %s", m.Engine().Revision())
	}

	// Server errors, a timeout, an oversized body, a bad token, a bad
	// bundle, the server gone: the last good revision stays.
	for _, tc := range []struct {
		name, stage, want string
		w                 *bundle.Watcher
		mutate            func(s *bundleServer)
	}{
		{"503", bundle.StageFetch, "503 Service Unavailable", w, func(s *bundleServer) { s.status = http.StatusServiceUnavailable }},
		{"unauthorized", bundle.StageFetch, "401", w, func(s *bundleServer) { s.token = "other" }},
		{"timeout", bundle.StageFetch, "deadline exceeded",
			watch(t, srv.ts.URL, m, bundle.WatchOptions{Timeout: 100 * time.Millisecond}),
			func(s *bundleServer) { s.delay = 2 * time.Second }},
		{"too big", bundle.StageFetch, "over the 1000 byte limit",
			watch(t, srv.ts.URL, m, bundle.WatchOptions{MaxBytes: 1000}), func(s *bundleServer) { s.token = "" }},
		{"corrupt", bundle.StageRead, "gzip", w, func(s *bundleServer) { s.body = []byte("<html>oops</html>") }},
	} {
		srv.set(func(s *bundleServer) { s.body, s.status, s.delay, s.token = b.TarGz, 0, 0, "s3cret" })
		srv.set(tc.mutate)
		ok, err := tc.w.Poll(ctx)
		if ok || bundle.StageOf(err) != tc.stage || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v %v, want stage %s and %q", tc.name, ok, err, tc.stage, tc.want)
		}
		if strings.Contains(err.Error(), "hidden") {
			t.Errorf("%s: error shows the query: %v", tc.name, err)
		}
		if m.Engine().Revision() != b.Revision || m.State().LastError == nil {
			t.Fatalf("%s: state %+v", tc.name, m.State())
		}
	}
	srv.set(func(s *bundleServer) { s.body, s.status, s.delay, s.token = a.TarGz, 0, 0, "s3cret" })
	srv.ts.Close()
	if ok, err := w.Poll(ctx); ok || bundle.StageOf(err) != bundle.StageFetch {
		t.Fatalf("server down: %v %v", ok, err)
	}
	if m.Engine().Revision() != b.Revision {
		t.Fatal("server down replaced the policy")
	}
}

// TestWatcherRun: the polling loop picks up a change and stops with its
// context.
func TestWatcherRun(t *testing.T) {
	a := build(t, repoPolicies, nil)
	b := build(t, copyPolicies(t, revisionB), nil)
	srv := newBundleServer(t, a.TarGz)
	m, _, _ := newManager(t, false)
	w := watch(t, srv.ts.URL, m, bundle.WatchOptions{Interval: 20 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.Run(ctx)
	}()
	waitFor(t, func() bool { return m.State().Revision == a.Revision })
	srv.set(func(s *bundleServer) { s.body = b.TarGz })
	waitFor(t, func() bool { return m.State().Revision == b.Revision })
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not stop")
	}
	// A request sent just before the stop can reach the server after Run
	// returned: let it land, then watch for five polling intervals.
	time.Sleep(50 * time.Millisecond)
	req, _ := srv.counts()
	time.Sleep(100 * time.Millisecond)
	if after, _ := srv.counts(); after != req {
		t.Fatalf("still polling after stop: %d requests, then %d", req, after)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
