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

// decisionLike has the shape of engine.Decision, the Result of every record
// the server writes.
type decisionLike struct {
	Allow            bool     `json:"allow"`
	Reason           string   `json:"reason"`
	Action           string   `json:"action,omitempty"`
	Route            string   `json:"route,omitempty"`
	RequiredAnyOf    []string `json:"required_any_of"`
	GrantedEffective []string `json:"granted_effective"`
	Matched          []string `json:"matched"`
	Missing          []string `json:"missing"`
	Narrowest        string   `json:"narrowest,omitempty"`
	UnknownScopes    []string `json:"unknown_scopes,omitempty"`
	Sensitive        bool     `json:"sensitive"`
	Explain          []string `json:"explain"`
	Remedy           string   `json:"remedy,omitempty"`
	Trace            []string `json:"trace,omitempty"`
}

// serverEvent is a record as internal/server builds it.
func serverEvent() Event {
	return Event{
		DecisionID: "a0129954-0268-413a-bac1-6da5521896f0",
		Timestamp:  t0,
		Path:       "scopegate/authz/decision",
		Input: map[string]any{
			"subject": "app:translator-bot", "client_id": "abc", "action": "project:launch",
			"granted_scopes": []string{"user:read", "project:write"},
			"context":        map[string]any{"ip": "10.0.0.1", "client_secret": "s3cr3t"},
		},
		Result: decisionLike{
			Allow: false, Reason: "missing_scope", Action: "project:launch",
			RequiredAnyOf:    []string{"project:launch", "project:manage"},
			GrantedEffective: []string{"project:read", "project:write", "user:read"},
			Matched:          []string{},
			Missing:          []string{"project:launch"},
			Narrowest:        "project:launch",
			Sensitive:        true,
			Explain: []string{"action project:launch requires one of [project:launch project:manage]",
				"token grants project:write (implies project:read), user:read: none of them"},
			Remedy: "request scope project:launch (narrowest) and send the user through consent again",
		},
		Bundles:     map[string]BundleInfo{"scopegate": {Revision: "sha256-54e3604d68ccaea7"}},
		Metrics:     map[string]any{"timer_server_handler_ns": int64(7616906)},
		Labels:      map[string]string{"app": "scopegate", "hostname": "vm", "version": "dev"},
		RequestedBy: "127.0.0.1:43356",
		Reason:      "missing_scope",
		Subject:     "app:translator-bot",
		ClientID:    "abc",
	}
}

// BenchmarkPrepareServerEvent is BenchmarkPrepare for the record the server
// writes for every decision. result=canonical is how the server hands over
// the decision, encoded once for its answer (the encoding is not counted).
func BenchmarkPrepareServerEvent(b *testing.B) {
	for _, result := range []string{"struct", "canonical"} {
		b.Run("result="+result, func(b *testing.B) {
			w := openT(b, Options{Path: logPath(b)})
			ev := serverEvent()
			if result == "canonical" {
				c := new(Canonical)
				if err := c.Encode(ev.Result); err != nil {
					b.Fatal(err)
				}
				ev.Result = c
			}
			b.ReportAllocs()
			for b.Loop() {
				r, err := w.prepare(ev)
				if err != nil {
					b.Fatal(err)
				}
				recycle(r)
			}
		})
	}
}
