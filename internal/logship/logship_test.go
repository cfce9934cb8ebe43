package logship

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"github.com/scopegate/scopegate/internal/decisionlog"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// opaEventV1 is the part of OPA's decision-log event (EventV1 in
// github.com/open-policy-agent/opa/v1/plugins/logs, v1.22.4) that a
// decision-log service reads, with the same JSON tags. Importing the plugin
// itself would pull OPA's whole plugin runtime into go.mod for one test.
type opaEventV1 struct {
	Labels     map[string]string `json:"labels"`
	DecisionID string            `json:"decision_id"`
	Bundles    map[string]struct {
		Revision string `json:"revision,omitempty"`
	} `json:"bundles,omitempty"`
	Path        string         `json:"path,omitempty"`
	Input       *any           `json:"input,omitempty"`
	Result      *any           `json:"result,omitempty"`
	Masked      []string       `json:"masked,omitempty"`
	RequestedBy string         `json:"requested_by,omitempty"`
	Timestamp   time.Time      `json:"timestamp"`
	Metrics     map[string]any `json:"metrics,omitempty"`
}

// fakeService is a decision-log service on loopback that can be taken down.
type fakeService struct {
	t        *testing.T
	mu       sync.Mutex
	up       bool
	events   []decisionlog.Event
	attempts int
	header   http.Header
	opa      []opaEventV1
}

func newFakeService(t *testing.T, up bool) (*fakeService, string) {
	f := &fakeService{t: t, up: up}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv.URL
}

func (f *fakeService) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.attempts++
	if !f.up {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if r.Method != http.MethodPost || r.URL.Path != "/logs" {
		f.t.Errorf("request %s %s, want POST /logs", r.Method, r.URL.Path)
	}
	events, err := DecodeBatch(bytes.NewReader(body))
	if err != nil {
		f.t.Errorf("batch: %v", err)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	// The same body must decode as OPA's own decision-log events.
	zr, err := gzipReader(body)
	if err != nil {
		f.t.Errorf("gzip: %v", err)
	} else {
		var opa []opaEventV1
		if err := json.NewDecoder(zr).Decode(&opa); err != nil {
			f.t.Errorf("decode as OPA EventV1: %v", err)
		}
		f.opa = append(f.opa, opa...)
	}
	f.header = r.Header.Clone()
	f.events = append(f.events, events...)
	w.WriteHeader(http.StatusNoContent)
}

func (f *fakeService) setUp(up bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.up = up
}

func (f *fakeService) received() []decisionlog.Event {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.events)
}

func (f *fakeService) tries() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.attempts
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func shipperOpts(path, url string, w *decisionlog.Writer) ShipperOptions {
	o := ShipperOptions{
		LogPath:       path,
		URL:           url,
		Token:         "ship-token",
		Interval:      10 * time.Millisecond,
		MinRetryDelay: 5 * time.Millisecond,
		MaxRetryDelay: 40 * time.Millisecond,
		BatchBytes:    8 << 10, // several batches
		Logger:        slog.New(slog.DiscardHandler),
	}
	if w != nil {
		o.Durable = w.DurableHash
	}
	return o
}

func newShipperT(t *testing.T, o ShipperOptions) *Shipper {
	t.Helper()
	s, err := NewShipper(o)
	if err != nil {
		t.Fatalf("NewShipper: %v", err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

// sameAsLog checks that the service received exactly the log's records, in
// order, as written (hashes included).
func sameAsLog(t *testing.T, got []decisionlog.Event, path string) {
	t.Helper()
	want, err := decisionlog.QueryAll(mustFiles(t, path), decisionlog.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("service has %d records, log has %d", len(got), len(want))
	}
	for i := range want {
		if got[i].DecisionID != want[i].DecisionID || got[i].Hash != want[i].Hash || got[i].PrevHash != want[i].PrevHash {
			t.Fatalf("record %d: service has %s (%s), log has %s (%s)", i, got[i].DecisionID, got[i].Hash, want[i].DecisionID, want[i].Hash)
		}
	}
}

func TestShipperRemoteDownThenUp(t *testing.T) {
	svc, url := newFakeService(t, false)
	path := logPath(t)
	w := openT(t, decisionlog.Options{Path: path, MaxBytes: 16 << 10}) // rotates while shipping
	s := newShipperT(t, shipperOpts(path, url, w))

	logRange(t, w, 0, 150)
	eventually(t, "records spooled", func() bool { return s.Stats().Spooled == 150 })
	eventually(t, "retries", func() bool { return svc.tries() >= 3 })
	if len(svc.received()) != 0 || s.Stats().SpoolBatches < 2 || !s.Stats().Failing {
		t.Fatalf("service down: received %d, stats %+v", len(svc.received()), s.Stats())
	}

	svc.setUp(true)
	logRange(t, w, 150, 200)
	eventually(t, "all records shipped", func() bool { return len(svc.received()) == 200 })
	sameAsLog(t, svc.received(), path)
	st := s.Stats()
	if st.Shipped != 200 || st.SpoolBatches != 0 || st.SpoolBytes != 0 || st.Failing || st.Gaps != 0 || st.SendErrors == 0 {
		t.Fatalf("stats %+v", st)
	}
	if w.Stats().Rotations == 0 {
		t.Fatal("the log never rotated; the test does not cover rotation")
	}

	// OPA-compatible request: headers, and OPA's EventV1 decodes the events.
	svc.mu.Lock()
	h, opa := svc.header, svc.opa
	svc.mu.Unlock()
	if h.Get("Content-Encoding") != "gzip" || h.Get("Content-Type") != "application/json" || h.Get("Authorization") != "Bearer ship-token" {
		t.Fatalf("headers %v", h)
	}
	first := testEvent(0)
	if len(opa) != 200 || opa[0].DecisionID != first.DecisionID || opa[0].Path != first.Path ||
		!opa[0].Timestamp.Equal(first.Timestamp) || opa[0].Bundles["scopegate"].Revision != "rev-1" ||
		opa[0].Labels["id"] != "node-1" || opa[0].Input == nil || opa[0].Result == nil {
		t.Fatalf("as OPA events: %d, first %+v", len(opa), opa[0])
	}
	// The spool holds nothing but the cursor and the lock now.
	entries, _ := os.ReadDir(path + ".spool")
	for _, e := range entries {
		if e.Name() != cursorFile && e.Name() != "lock" {
			t.Errorf("left in spool: %s", e.Name())
		}
	}
}

func TestShipperRestartWhileDown(t *testing.T) {
	svc, url := newFakeService(t, false)
	path := logPath(t)
	ctx := context.Background()

	w := openT(t, decisionlog.Options{Path: path})
	s := newShipperT(t, shipperOpts(path, url, w))
	logRange(t, w, 0, 60)
	eventually(t, "records spooled", func() bool { return s.Stats().Spooled == 60 })
	// Records written after the shipper stopped looking are still in the log.
	closeT(t, w)
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(svc.received()); n != 0 {
		t.Fatalf("received %d while down", n)
	}

	// Restart, still down: the new shipper picks up the spool and the cursor.
	w = openT(t, decisionlog.Options{Path: path})
	s = newShipperT(t, shipperOpts(path, url, w))
	if st := s.Stats(); st.SpoolBatches == 0 {
		t.Fatalf("restart lost the spool: %+v", st)
	}
	logRange(t, w, 60, 100)
	eventually(t, "new records spooled", func() bool { return s.Stats().Spooled == 40 })

	svc.setUp(true)
	eventually(t, "all records shipped", func() bool { return len(svc.received()) == 100 })
	sameAsLog(t, svc.received(), path)
	closeT(t, w)
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}

	// A third run finds nothing new to send.
	w = openT(t, decisionlog.Options{Path: path})
	s = newShipperT(t, shipperOpts(path, url, w))
	logRange(t, w, 100, 101)
	eventually(t, "one more record", func() bool { return len(svc.received()) == 101 })
	sameAsLog(t, svc.received(), path)
}

func TestShipperShipsOnlyDurableRecords(t *testing.T) {
	svc, url := newFakeService(t, true)
	path := logPath(t)
	w := openT(t, decisionlog.Options{Path: path})
	logRange(t, w, 0, 10)
	closeT(t, w)
	evs, err := decisionlog.QueryAll(mustFiles(t, path), decisionlog.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	o := shipperOpts(path, url, nil)
	o.Durable = func() string { return evs[3].Hash }
	s := newShipperT(t, o)
	eventually(t, "4 records", func() bool { return len(svc.received()) == 4 })
	time.Sleep(50 * time.Millisecond)
	if n := len(svc.received()); n != 4 || s.Stats().Spooled != 4 {
		t.Fatalf("shipped %d records past the durable one", n)
	}
}

func TestShipperReportsRecordsDeletedBeforeShipping(t *testing.T) {
	svc, url := newFakeService(t, true)
	path := logPath(t)
	w := openT(t, decisionlog.Options{Path: path})
	s := newShipperT(t, shipperOpts(path, url, w))
	logRange(t, w, 0, 5)
	eventually(t, "5 records", func() bool { return len(svc.received()) == 5 })
	closeT(t, w)
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}

	// Without a shipper, the log rotates and retention deletes records that
	// were never shipped.
	clock := newFakeClock(t0)
	w = openT(t, decisionlog.Options{Path: path, MaxAge: time.Minute, MaxFiles: 1, Clock: clock.Now})
	logRange(t, w, 5, 10)
	clock.Add(2 * time.Minute)
	logRange(t, w, 10, 15)
	clock.Add(2 * time.Minute)
	logRange(t, w, 15, 20)
	if files := mustFiles(t, path); len(files) != 2 {
		t.Fatalf("files %v", files)
	}

	var logs syncBuffer
	o := shipperOpts(path, url, w)
	o.Logger = testLogger(&logs)
	s = newShipperT(t, o)
	eventually(t, "the records still on disk", func() bool { return len(svc.received()) == 15 })
	got := svc.received()
	if got[5].DecisionID != "d-00010" || s.Stats().Gaps != 1 {
		t.Fatalf("after the gap: %s, stats %+v", got[5].DecisionID, s.Stats())
	}
	if !strings.Contains(logs.String(), "removed from the local log before they were shipped") {
		t.Fatalf("gap not logged:\n%s", logs.String())
	}
}

func TestShipperResumesAfterSpoolAheadOfCursor(t *testing.T) {
	// A crash between spooling batches and saving the cursor: the newest
	// batch is ahead of the cursor, and must not be spooled twice.
	svc, url := newFakeService(t, false)
	path := logPath(t)
	w := openT(t, decisionlog.Options{Path: path})
	s := newShipperT(t, shipperOpts(path, url, w))
	logRange(t, w, 0, 30)
	eventually(t, "spooled", func() bool { return s.Stats().Spooled == 30 })
	closeT(t, w)
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(path+".spool", cursorFile), []byte(`{"hash":"","next_seq":0}`), 0o600); err != nil {
		t.Fatal(err)
	}
	w = openT(t, decisionlog.Options{Path: path})
	newShipperT(t, shipperOpts(path, url, w))
	svc.setUp(true)
	eventually(t, "all records", func() bool { return len(svc.received()) == 30 })
	time.Sleep(50 * time.Millisecond)
	sameAsLog(t, svc.received(), path)
}

func TestShipperOptionErrors(t *testing.T) {
	for _, o := range []ShipperOptions{
		{URL: "http://x"},
		{LogPath: "-", URL: "http://x"},
		{LogPath: "d.log", URL: "ftp://x"},
		{LogPath: "d.log", URL: "http://x", Interval: -1},
	} {
		if _, err := NewShipper(o); err == nil {
			t.Errorf("%+v: no error", o)
		}
	}
	path := logPath(t)
	o := shipperOpts(path, "http://127.0.0.1:1", nil)
	newShipperT(t, o)
	if _, err := NewShipper(o); err == nil || !strings.Contains(err.Error(), "held by another writer") {
		t.Fatalf("second shipper on one spool: %v", err)
	}
}

func gzipReader(b []byte) (io.Reader, error) { return gzip.NewReader(bytes.NewReader(b)) }
