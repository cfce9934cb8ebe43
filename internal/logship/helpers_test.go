package logship

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scopegate/scopegate/internal/decisionlog"
)

// The local log the shipper tails, written as the server writes it.

var t0 = time.Date(2026, 11, 23, 18, 0, 0, 0, time.UTC)

// fakeClock is safe for use by the test and the writer goroutine.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock(t time.Time) *fakeClock {
	c := &fakeClock{}
	c.ns.Store(t.UnixNano())
	return c
}

func (c *fakeClock) Now() time.Time      { return time.Unix(0, c.ns.Load()).UTC() }
func (c *fakeClock) Add(d time.Duration) { c.ns.Add(int64(d)) }

// syncBuffer collects log output written from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func testLogger(buf *syncBuffer) *slog.Logger { return slog.New(slog.NewTextHandler(buf, nil)) }

func testEvent(i int) decisionlog.Event {
	subjects := []string{"app:translator-bot", "app:billing", "user:u1"}
	reasons := []string{"allowed", "missing_scope", "unknown_scope"}
	return decisionlog.Event{
		DecisionID:  fmt.Sprintf("d-%05d", i),
		Timestamp:   t0.Add(time.Duration(i) * time.Minute),
		Path:        "scopegate/authz/decision",
		Input:       map[string]any{"subject": subjects[i%3], "action": "project:launch", "granted_scopes": []any{"user:read"}},
		Result:      map[string]any{"allow": i%3 == 0, "reason": reasons[i%3]},
		Bundles:     map[string]decisionlog.BundleInfo{"scopegate": {Revision: "rev-1"}},
		Metrics:     map[string]any{"timer_server_handler_ns": 1234 + i},
		Labels:      map[string]string{"id": "node-1"},
		RequestedBy: "127.0.0.1:5555",
		Reason:      reasons[i%3],
		Subject:     subjects[i%3],
		Allow:       i%3 == 0,
	}
}

func openT(t testing.TB, opts decisionlog.Options) *decisionlog.Writer {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	w, err := decisionlog.Open(context.Background(), opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = w.Close(context.Background()) })
	return w
}

func logRange(t testing.TB, w *decisionlog.Writer, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		if err := w.LogDurable(context.Background(), testEvent(i)); err != nil {
			t.Fatalf("LogDurable(%d): %v", i, err)
		}
	}
}

func closeT(t testing.TB, w *decisionlog.Writer) {
	t.Helper()
	if err := w.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func mustFiles(t testing.TB, path string) []string {
	t.Helper()
	files, err := decisionlog.Files(path)
	if err != nil {
		t.Fatalf("Files: %v", err)
	}
	return files
}

func logPath(t testing.TB) string { return filepath.Join(t.TempDir(), "decisions.log") }
