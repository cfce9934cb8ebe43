package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/scopegate/scopegate/internal/decisionlog"
)

// badRequests are answered 400 (and still logged, as invalid_input).
var badRequests = [][]byte{
	[]byte(`{"granted_scopes":["user:read"],"action":"user:read","extra":1}`),
	[]byte(`{"granted_scopes":"user:read  user:email","action":"user:email"}`),
	[]byte(`{"granted_scopes":["user:read"],"method":"GET","path":"/me/../admin"}`),
	[]byte(`{"granted_scopes":["user:read"],"action":`),
}

// soak holds a fixed rate against scopegate with a mix of allowed, denied
// and malformed requests, then checks the answers and the decision log:
// only 200 and 400 answers, and exactly one verified log record per answer.
func soak(ctx context.Context, cfg config) error {
	if err := os.MkdirAll(cfg.out, 0o755); err != nil {
		return err
	}
	good, err := readRequests("bench/requests.jsonl")
	if err != nil {
		return err
	}
	// About one request in six is malformed.
	bodies := append(append([][]byte{}, good...), badRequests...)

	logPath := filepath.Join(cfg.out, "soak-decisions.log")
	old, _ := filepath.Glob(filepath.Join(cfg.out, "soak-decisions*"))
	for _, f := range old {
		if err := os.Remove(f); err != nil {
			return err
		}
	}
	sg := &server{name: "scopegate-soak", ready: "/ready", decide: "/v1/decide"}
	stop, err := start(cfg, sg, cfg.scopegate, append([]string{"serve", "--log-level", "warn", "--decision-log", logPath}, strings.Fields(cfg.serveArgs)...))
	if err != nil {
		return err
	}
	defer stop()
	if sg.targets, err = writeTargets(cfg.out, sg, bodies); err != nil {
		return err
	}
	time.Sleep(time.Second)
	rssStart, err := rss(sg.cmd.Process.Pid, "VmRSS")
	if err != nil {
		return err
	}

	// Sample RSS while the load runs.
	var mu sync.Mutex
	var samples []int64
	sampleCtx, stopSampling := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-sampleCtx.Done():
				return
			case <-t.C:
				if v, err := rss(sg.cmd.Process.Pid, "VmRSS"); err == nil {
					mu.Lock()
					samples = append(samples, v)
					mu.Unlock()
				}
			}
		}
	}()
	fmt.Printf("soak: %d req/s for %s, %d request shapes (%d malformed)\n", cfg.rate, cfg.duration, len(bodies), len(badRequests))
	r, err := attack(ctx, cfg, sg, []string{fmt.Sprintf("-rate=%d/s", cfg.rate)})
	stopSampling()
	wg.Wait()
	if err != nil {
		return err
	}
	rssEnd, _ := rss(sg.cmd.Process.Pid, "VmRSS")
	rssPeak, _ := rss(sg.cmd.Process.Pid, "VmHWM")

	// Graceful stop flushes the log; then every answer must be on disk.
	if err := sg.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	if err := sg.cmd.Wait(); err != nil {
		return fmt.Errorf("scopegate exit after SIGTERM: %w", err)
	}
	files, err := decisionlog.Files(logPath)
	if err != nil {
		return err
	}
	rep, verr := decisionlog.Verify(files)

	ok200, bad400 := r.StatusCodes["200"], r.StatusCodes["400"]
	unexpected := r.Requests - ok200 - bad400
	fmt.Printf("\nrequests            %d (sent at %.0f req/s; %.0f req/s answered 200)\n", r.Requests, r.Rate, r.Throughput)
	fmt.Printf("answers             200: %d, 400: %d, unexpected: %d %v\n", ok200, bad400, unexpected, r.StatusCodes)
	fmt.Printf("latency             p50 %.3f ms, p90 %.3f ms, p99 %.3f ms, max %.3f ms\n",
		float64(r.Latencies.P50)/1e6, float64(r.Latencies.P90)/1e6, float64(r.Latencies.P99)/1e6, float64(r.Latencies.Max)/1e6)
	mu.Lock()
	fmt.Printf("RSS                 start %.1f MiB, end %.1f MiB, peak %.1f MiB, samples %v KiB\n",
		float64(rssStart)/1024, float64(rssEnd)/1024, float64(rssPeak)/1024, samples)
	mu.Unlock()
	fmt.Printf("decision log        %d records in %d file(s), chain verified: %v\n", rep.Records, rep.Files, verr == nil)

	var problems []error
	if unexpected != 0 {
		problems = append(problems, fmt.Errorf("%d unexpected answers (errors: %v)", unexpected, firstN(r.Errors, 3)))
	}
	if verr != nil {
		problems = append(problems, fmt.Errorf("decision log chain: %w", verr))
	}
	if rep.Records != ok200+bad400 {
		problems = append(problems, fmt.Errorf("decision log holds %d records for %d answers", rep.Records, ok200+bad400))
	}
	if len(problems) == 0 {
		fmt.Println("soak passed: no unexpected answers, one verified log record per answer")
	}
	return errors.Join(problems...)
}
