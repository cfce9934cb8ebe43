package server_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/scopegate/scopegate/internal/decisionlog"
	"github.com/scopegate/scopegate/internal/engine"
	"github.com/scopegate/scopegate/internal/server"
	"github.com/scopegate/scopegate/internal/source"
)

// benchBodies are typical /v1/decide requests: a few tokens and actions, a
// context with a secret to mask.
var benchBodies = []string{
	`{"subject":"app:translator-bot","client_id":"abc","granted_scopes":["user:read","project:write"],"action":"project:launch"}`,
	`{"subject":"app:translator-bot","client_id":"abc","granted_scopes":"user:read project:write","action":"project:read","resource":{"type":"project","id":"42","owner":"u1"}}`,
	`{"subject":"app:billing","client_id":"def","granted_scopes":["project:manage"],"method":"POST","path":"/projects/42/launch","context":{"ip":"10.0.0.1","client_secret":"s3cr3t"}}`,
	`{"subject":"user:u1","client_id":"ghi","granted_scopes":["user:read"],"requested_scopes":["user:read","user:email"],"action":"user:email"}`,
}

// logs are the writers benchLog opened, for reportFsyncs.
var logs []*decisionlog.Writer

func reportFsyncs(b *testing.B) {
	if len(logs) == 0 {
		return
	}
	st := logs[len(logs)-1].Stats()
	b.ReportMetric(float64(st.Written)/float64(max(st.Syncs, 1)), "records/fsync")
}

func benchEngine(b *testing.B) *engine.Engine {
	b.Helper()
	src, err := source.FromFiles("../../scopes.yaml", "../../policies")
	if err != nil {
		b.Fatal(err)
	}
	e, err := engine.New(context.Background(), src)
	if err != nil {
		b.Fatal(err)
	}
	return e
}

// benchLog returns nil (mode off) or a real decision log in a temporary
// directory that answers each decision once its record is fsynced (mode
// always, the default of serve) or once it is written (mode interval:
// --decision-log-sync interval, fsynced every 200ms).
func benchLog(b *testing.B, mode string) server.DecisionLog {
	b.Helper()
	if mode == "off" {
		return nil
	}
	sync := decisionlog.SyncAlways
	if mode == "interval" {
		sync = decisionlog.SyncInterval
	}
	w, err := decisionlog.Open(context.Background(), decisionlog.Options{
		Path:   filepath.Join(b.TempDir(), "decisions.log"),
		Sync:   sync,
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := w.Close(context.Background()); err != nil {
			b.Error(err)
		}
	})
	logs = append(logs, w)
	if mode == "nowait" {
		return nowait{w}
	}
	return w
}

// nowait is a decision log whose LogDurable only queues the record: not a
// mode scopegate offers (an answer could outrun its record), but the bound
// on what waiting less for the write could gain (mode nowait).
type nowait struct{ *decisionlog.Writer }

func (n nowait) LogDurable(ctx context.Context, ev decisionlog.Event) error { return n.Log(ctx, ev) }

// BenchmarkDecideLog compares /v1/decide with the decision log off and on.
//
//	http:    real HTTP on loopback, keep-alive clients, client and server in
//	         this process (the client's cost is in both);
//	handler: the handler called directly, no network: the worst case for
//	         the log, whose share of the work is largest there.
//
// log=off has no decision log. log=always is serve's default: each answer
// waits for its record's fsync, which concurrent decisions share (group
// commit), so throughput grows with the number of clients in flight.
// log=interval (--decision-log-sync interval) answers once the record is
// written and fsyncs every 200ms. log=nowait answers once the record is
// queued, to measure what waiting costs. clients is the number of requests in
// flight (GOMAXPROCS x parallelism). decisions/s is the figure to compare
// (BENCHMARKS.md); cpu-us/op is the process's CPU time (user and system,
// clients included) per decision; records/fsync shows the group commit.
//
// Sub-benchmarks run later in a process measure slower than the same one run
// first: compare modes one process each, alternating (bench/log-ratio).
func BenchmarkDecideLog(b *testing.B) {
	eng := benchEngine(b)
	for _, par := range []int{8, 64} {
		clients := par * runtime.GOMAXPROCS(0)
		for _, mode := range []string{"off", "always", "interval", "nowait"} {
			name := fmt.Sprintf("clients=%d/log=%s", clients, mode)
			b.Run("http/"+name, func(b *testing.B) {
				srv := httptest.NewServer(server.New(eng, server.Options{Log: benchLog(b, mode)}))
				defer srv.Close()
				client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
				defer client.CloseIdleConnections()
				b.SetParallelism(par)
				b.ReportAllocs()
				cpu := processCPU()
				b.RunParallel(func(pb *testing.PB) {
					for i := 0; pb.Next(); i++ {
						resp, err := client.Post(srv.URL+"/v1/decide", "application/json", strings.NewReader(benchBodies[i%len(benchBodies)]))
						if err != nil {
							b.Error(err)
							return
						}
						_, _ = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						if resp.StatusCode != http.StatusOK {
							b.Errorf("status %d", resp.StatusCode)
							return
						}
					}
				})
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "decisions/s")
				b.ReportMetric(float64((processCPU()-cpu).Microseconds())/float64(b.N), "cpu-us/op")
				if mode != "off" {
					reportFsyncs(b)
				}
			})
			b.Run("handler/"+name, func(b *testing.B) {
				h := server.New(eng, server.Options{Log: benchLog(b, mode)})
				b.SetParallelism(par)
				b.ReportAllocs()
				cpu := processCPU()
				b.RunParallel(func(pb *testing.PB) {
					for i := 0; pb.Next(); i++ {
						req := httptest.NewRequest(http.MethodPost, "/v1/decide", strings.NewReader(benchBodies[i%len(benchBodies)]))
						rec := httptest.NewRecorder()
						h.ServeHTTP(rec, req)
						if rec.Code != http.StatusOK || strings.Contains(rec.Body.String(), "log_unavailable") {
							b.Errorf("status %d: %s", rec.Code, rec.Body)
							return
						}
					}
				})
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "decisions/s")
				b.ReportMetric(float64((processCPU()-cpu).Microseconds())/float64(b.N), "cpu-us/op")
				if mode != "off" {
					reportFsyncs(b)
				}
			})
		}
	}
}
