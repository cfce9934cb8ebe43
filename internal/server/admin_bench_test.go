package server_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/scopegate/scopegate/internal/decisionlog"
	"github.com/scopegate/scopegate/internal/server"
)

// BenchmarkAdminDecisions times the auditor endpoint on a large log, with
// the index (as serve runs) and reading the files (before the index is
// built): the newest 50 records, a subject that occurs 3 times, one
// decision id. The log is SCOPEGATE_BENCH_LOG_MB megabytes (default 40) of
// records shaped as the server writes them, rotated at 100 MB:
//
//	SCOPEGATE_BENCH_LOG_MB=400 go test -run '^$' -bench AdminDecisions -benchtime 20x ./internal/server/
func BenchmarkAdminDecisions(b *testing.B) {
	mb := 40
	if v, err := strconv.Atoi(os.Getenv("SCOPEGATE_BENCH_LOG_MB")); err == nil && v > 0 {
		mb = v
	}
	path, target := largeLog(b, mb)
	indexed := server.New(nil, server.Options{DecisionLogPath: path})
	start := time.Now()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	indexed.IndexLog(ctx, time.Hour)
	b.Logf("%d MB log: index built in %s", mb, time.Since(start).Round(time.Millisecond))
	for _, srv := range []struct {
		name string
		h    http.Handler
	}{{"indexed", indexed}, {"files", server.New(nil, server.Options{DecisionLogPath: path})}} {
		ts := httptest.NewServer(srv.h)
		for _, q := range []struct{ name, query string }{
			{"newest50", "?limit=50"}, {"rare-subject", "?subject=app:rare&limit=50"}, {"decision-id", "?decision_id=" + target},
		} {
			b.Run(srv.name+"/"+q.name, func(b *testing.B) {
				for range b.N {
					resp, err := http.Get(ts.URL + "/v1/admin/decisions" + q.query)
					if err != nil {
						b.Fatal(err)
					}
					n, _ := io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 || n < 100 {
						b.Fatalf("%d, %d bytes", resp.StatusCode, n)
					}
				}
			})
		}
		ts.Close()
	}
}

// largeLog writes a log of about mb megabytes: 10,000 subjects, a rare one
// three times, and returns it with one decision id from its middle.
func largeLog(b *testing.B, mb int) (path, target string) {
	b.Helper()
	path = filepath.Join(b.TempDir(), "decisions.log")
	w, err := decisionlog.Open(context.Background(), decisionlog.Options{Path: path, MaxBytes: 100_000_000, Sync: decisionlog.SyncInterval})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	t0 := time.Now().Add(-time.Hour)
	var size int64
	n := 0
	for size < int64(mb)<<20 {
		subject := fmt.Sprintf("app:%d", n%10000)
		if n%100000 == 1000 {
			subject = "app:rare"
		}
		id := fmt.Sprintf("d-%09d", n)
		ev := decisionlog.Event{DecisionID: id, Timestamp: t0.Add(time.Duration(n) * time.Millisecond), Path: "scopegate/authz/decision",
			Input: map[string]any{"subject": subject, "client_id": fmt.Sprintf("client-%d", n%50), "granted_scopes": []any{"user:read", "project:write"},
				"method": "GET", "path": fmt.Sprintf("/projects/%d", n)},
			Result: map[string]any{"allow": n%2 == 0, "reason": "allowed", "action": "project.list",
				"explain":           []any{"route GET /projects/{id} matches action project.list", "action project.list requires one of [project:read project:write project:manage]", "token grants project:write (implies project:read), user:read: project:write confers project.list"},
				"granted_effective": []any{"project:read", "project:write", "user:read"}, "required_any_of": []any{"project:read", "project:write", "project:manage"},
				"matched": []any{"project:write"}, "missing": []any{}, "requested_not_granted": []any{}, "narrowed_by_user": false, "sensitive": false},
			Bundles: map[string]decisionlog.BundleInfo{"scopegate": {Revision: "sha256-cfef44481a423ca2"}},
			Labels:  map[string]string{"app": "scopegate", "hostname": "bench", "version": "dev"},
			Reason:  "allowed", Subject: subject, ClientID: fmt.Sprintf("client-%d", n%50), Allow: n%2 == 0, RequestedBy: "127.0.0.1:40000"}
		if err := w.Log(ctx, ev); err != nil {
			b.Fatal(err)
		}
		n++
		if n%1000 == 0 {
			size = int64(w.Stats().Bytes)
		}
	}
	if err := w.Close(ctx); err != nil {
		b.Fatal(err)
	}
	return path, fmt.Sprintf("d-%09d", n/2)
}
