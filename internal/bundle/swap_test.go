package bundle_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scopegate/scopegate/internal/bundle"
	"github.com/scopegate/scopegate/internal/engine"
	"github.com/scopegate/scopegate/internal/server"
)

// TestHotSwapUnderLoad: clients hammer /v1/decide while the bundle file
// alternates between two revisions that answer the same request
// differently. No request may fail, and every answer must be the one its
// reported bundle_revision gives: no answer mixes two policies.
func TestHotSwapUnderLoad(t *testing.T) {
	ctx := context.Background()
	a := build(t, repoPolicies, nil)
	b := build(t, copyPolicies(t, revisionB), nil)
	want := map[string]bool{a.Revision: true, b.Revision: false} // project:read may project.list?

	var srv *server.Server
	m := bundle.NewManager(bundle.ManagerOptions{OnActivate: func(e *engine.Engine) { srv.SetEngine(e) }})
	srv = server.New(nil, server.Options{Status: m.ReadyStatus})
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	path := filepath.Join(t.TempDir(), "scopegate.tar.gz")
	writeFile(t, path, a.TarGz)
	w := watch(t, path, m, bundle.WatchOptions{})
	if ok, err := w.Poll(ctx); !ok || err != nil {
		t.Fatal(ok, err)
	}

	const workers = 8
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: workers}}
	t.Cleanup(client.CloseIdleConnections)
	var (
		stop                   atomic.Bool
		total, bad, mismatched atomic.Int64
		seen                   sync.Map
		wg                     sync.WaitGroup
		firstProblem           atomic.Value
	)
	body := `{"granted_scopes":["project:read"],"action":"project.list"}`
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				resp, err := client.Post(ts.URL+"/v1/decide", "application/json", strings.NewReader(body))
				if err != nil {
					bad.Add(1)
					firstProblem.CompareAndSwap(nil, err.Error())
					continue
				}
				raw, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				total.Add(1)
				var d decision
				if resp.StatusCode != 200 || json.Unmarshal(raw, &d) != nil {
					bad.Add(1)
					firstProblem.CompareAndSwap(nil, string(raw))
					continue
				}
				allow, known := want[d.BundleRevision]
				if !known || d.Allow != allow || (d.Reason == "allowed") != allow {
					mismatched.Add(1)
					firstProblem.CompareAndSwap(nil, string(raw))
				}
				seen.Store(d.BundleRevision, true)
			}
		}()
	}

	const swaps = 20
	var swapTimes []time.Duration
	for i := range swaps {
		next := b
		if i%2 == 1 {
			next = a
		}
		time.Sleep(20 * time.Millisecond) // let requests land on each revision
		start := time.Now()
		writeFile(t, path, next.TarGz)
		if ok, err := w.Poll(ctx); !ok || err != nil {
			t.Fatalf("swap %d: %v %v", i, ok, err)
		}
		swapTimes = append(swapTimes, time.Since(start))
		if got := srv.Engine().Revision(); got != next.Revision {
			t.Fatalf("swap %d: serving %s", i, got)
		}
	}
	time.Sleep(20 * time.Millisecond)
	stop.Store(true)
	wg.Wait()

	if bad.Load() != 0 || mismatched.Load() != 0 {
		t.Fatalf("%d failed and %d inconsistent answers out of %d; first: %v", bad.Load(), mismatched.Load(), total.Load(), firstProblem.Load())
	}
	for rev := range want {
		if _, ok := seen.Load(rev); !ok {
			t.Errorf("no answer came from revision %s", rev)
		}
	}
	if total.Load() < 100 {
		t.Errorf("only %d requests: the load did not overlap the swaps", total.Load())
	}
	var sum time.Duration
	for _, d := range swapTimes {
		sum += d
	}
	t.Logf("%d decisions, 0 failed, 0 inconsistent, across %d swaps; mean swap under load (write file -> read, compile, smoke decision, SetEngine) %v",
		total.Load(), swaps, sum/time.Duration(len(swapTimes)))
}
