package decisionlog

import (
	"context"
	"testing"
)

// benchEvent is a typical decision: a token with a few scopes, a context with
// a secret to mask and a bearer header.
func benchEvent() Event {
	ev := testEvent(1)
	in := ev.Input.(map[string]any)
	in["requested_scopes"] = []any{"project:manage"}
	in["resource"] = map[string]any{"type": "project", "id": "42", "owner": "u1"}
	in["context"] = map[string]any{"ip": "10.0.0.1", "client_secret": "s"}
	in["headers"] = map[string]any{"Authorization": "Bearer abc.def.ghi", "Accept": "application/json"}
	ev.Result = map[string]any{
		"allow": false, "reason": "missing_scope",
		"required_any_of":   []any{"project:launch", "project:manage"},
		"granted_effective": []any{"project:read", "project:write", "user:read"},
		"missing":           []any{"project:launch"},
	}
	return ev
}

func BenchmarkLog(b *testing.B) {
	w := openT(b, Options{Path: logPath(b)})
	ev := benchEvent()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := w.Log(ctx, ev); err != nil {
			b.Fatal(err)
		}
	}
	closeT(b, w) // count the drain: the queue may hold up to BufferSize records
}

func BenchmarkLogDurableParallel(b *testing.B) {
	w := openT(b, Options{Path: logPath(b)})
	ev := benchEvent()
	b.ReportAllocs()
	b.SetParallelism(16) // many concurrent requests, as in the server
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			if err := w.LogDurable(ctx, ev); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	s := w.Stats()
	closeT(b, w)
	b.ReportMetric(float64(s.Written)/float64(max(s.Syncs, 1)), "records/fsync")
}

// BenchmarkPrepare is the per-record work done in the caller's goroutine
// (encode, mask, canonicalize).
func BenchmarkPrepare(b *testing.B) {
	w := openT(b, Options{Path: logPath(b)})
	ev := benchEvent()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := w.prepare(ev); err != nil {
			b.Fatal(err)
		}
	}
}
