// Command bench measures scopegate's HTTP decision endpoint against the real
// OPA server (`opa run --server`) answering the same policy and data, on
// this machine, in the same run, and prints both side by side with ratios.
//
// Everything runs on loopback and every load step is bounded in time. Run it
// through bench/run, which installs the opa and vegeta binaries it drives.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

type config struct {
	scopegate, opa, vegeta string
	out                    string
	duration               time.Duration
	rate                   int
	workers                int
	rounds                 int
	serveArgs              string
	bodies                 int
}

func main() {
	var cfg config
	flag.StringVar(&cfg.scopegate, "scopegate", "bench/out/scopegate", "scopegate binary")
	flag.StringVar(&cfg.opa, "opa", ".ci/bin/opa", "opa binary")
	flag.StringVar(&cfg.vegeta, "vegeta", ".ci/bin/vegeta", "vegeta binary")
	flag.StringVar(&cfg.out, "out", "bench/out", "directory for targets, logs and results")
	flag.DurationVar(&cfg.duration, "duration", 10*time.Second, "length of each load step")
	flag.IntVar(&cfg.rate, "rate", 5000, "fixed request rate for the latency step (req/s)")
	flag.IntVar(&cfg.workers, "workers", 32, "concurrent connections for the throughput step")
	flag.IntVar(&cfg.rounds, "rounds", 1, "how many times to repeat the throughput step per server (alternating)")
	flag.StringVar(&cfg.serveArgs, "serve-args", "", "extra flags for scopegate serve, space-separated (e.g. \"--decision-log-sync always\")")
	soakMode := flag.Bool("soak", false, "instead of comparing with OPA, hold -rate for -duration with a mix of good and bad requests and check nothing is lost")
	workload := flag.String("workload", "repeated", "repeated: bench/requests.jsonl against opa on the same policy; realistic: fresh ids, many tokens, ABAC, against opa on the same policy and a minimal check (realistic.go); gateway: forward auth through nginx against direct /v1/decide, with access tokens (gateway.go)")
	flag.IntVar(&cfg.bodies, "bodies", 100000, "realistic: how many distinct questions (more than a step sends, so each id is fresh)")
	flag.Parse()
	runner := run
	switch {
	case *soakMode:
		runner = soak
	case *workload == "realistic":
		runner = realistic
	case *workload == "gateway":
		runner = gateway
	case *workload != "repeated":
		fmt.Fprintln(os.Stderr, "bench: -workload is repeated, realistic or gateway")
		os.Exit(2)
	}
	if err := runner(context.Background(), cfg); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// server is one system under test.
type server struct {
	name    string
	bin     string
	args    []string
	cmd     *exec.Cmd
	base    string
	decide  string // URL answering a decision
	wrap    bool   // OPA wants {"input": ...}
	ready   string // URL that answers 200 once the policy is loaded
	targets string
	startMS float64
	rssIdle int64 // KiB
	rssPeak int64 // KiB, VmHWM after the load steps
	tput    []report
	fixed   report
}

// report is the part of `vegeta report -type=json` used here.
type report struct {
	Latencies struct {
		P50  int64 `json:"50th"`
		P90  int64 `json:"90th"`
		P99  int64 `json:"99th"`
		Max  int64 `json:"max"`
		Mean int64 `json:"mean"`
	} `json:"latencies"`
	Requests    int            `json:"requests"`
	Rate        float64        `json:"rate"`
	Throughput  float64        `json:"throughput"`
	Success     float64        `json:"success"`
	StatusCodes map[string]int `json:"status_codes"`
	Errors      []string       `json:"errors"`
}

func run(ctx context.Context, cfg config) error {
	if err := os.MkdirAll(cfg.out, 0o755); err != nil {
		return err
	}
	bodies, err := readRequests("bench/requests.jsonl")
	if err != nil {
		return err
	}
	opaArgs := []string{"run", "--server", "--log-level", "error", "--disable-telemetry"}
	if _, err := os.Stat("bundles/scopegate/.manifest"); err == nil {
		opaArgs = append(opaArgs, "--bundle", "bundles/scopegate")
	} else {
		opaArgs = append(opaArgs, "policies", "bundles/scopegate/data.json")
	}
	sg := &server{name: "scopegate", ready: "/ready", decide: "/v1/decide"}
	op := &server{name: "opa", ready: "/health?bundles", decide: "/v1/data/scopegate/authz/decision", wrap: true}
	servers := []*server{sg, op}

	for _, s := range servers {
		args := append([]string{"serve", "--log-level", "warn", "--decision-log", filepath.Join(cfg.out, "decisions.log")}, strings.Fields(cfg.serveArgs)...)
		bin := cfg.scopegate
		if s.name == "opa" {
			args, bin = opaArgs, cfg.opa
		}
		stop, err := start(cfg, s, bin, args)
		if err != nil {
			return err
		}
		defer stop()
		if s.targets, err = writeTargets(cfg.out, s, bodies); err != nil {
			return err
		}
	}

	if err := sameAnswers(sg, op, bodies); err != nil {
		return err
	}
	fmt.Printf("both servers give the same allow/reason for all %d requests\n", len(bodies))

	time.Sleep(time.Second)
	for _, s := range servers {
		if s.rssIdle, err = rss(s.cmd.Process.Pid, "VmRSS"); err != nil {
			return err
		}
	}

	for round := 0; round < cfg.rounds; round++ {
		for _, s := range servers {
			fmt.Printf("throughput: %s, %d connections, %s\n", s.name, cfg.workers, cfg.duration)
			r, err := attack(ctx, cfg, s, []string{"-rate=0", "-max-workers=" + strconv.Itoa(cfg.workers), "-workers=" + strconv.Itoa(cfg.workers)})
			if err != nil {
				return err
			}
			s.tput = append(s.tput, r)
		}
	}
	for _, s := range servers {
		fmt.Printf("latency: %s at %d req/s for %s\n", s.name, cfg.rate, cfg.duration)
		if s.fixed, err = attack(ctx, cfg, s, []string{"-rate=" + strconv.Itoa(cfg.rate) + "/s"}); err != nil {
			return err
		}
		if s.rssPeak, err = rss(s.cmd.Process.Pid, "VmHWM"); err != nil {
			return err
		}
	}
	return printResults(os.Stdout, cfg, sg, op)
}

// start launches a server on a free loopback port (bin args --addr ADDR),
// waits until it is ready and records how long that took. stop kills it.
func start(cfg config, s *server, bin string, args []string) (stop func(), err error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	s.base = "http://" + addr
	s.cmd = exec.Command(bin, append(args, "--addr", addr)...)
	logFile, err := os.Create(filepath.Join(cfg.out, s.name+".stderr"))
	if err != nil {
		return nil, err
	}
	s.cmd.Stdout, s.cmd.Stderr = logFile, logFile
	began := time.Now()
	if err := s.cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s: %w", s.name, err)
	}
	stop = func() {
		if s.cmd.ProcessState == nil {
			_ = s.cmd.Process.Kill()
			_ = s.cmd.Wait()
		}
		logFile.Close()
	}
	if err := waitReady(s.base+s.ready, 30*time.Second); err != nil {
		stop()
		return nil, fmt.Errorf("%s: %w (see %s)", s.name, err, logFile.Name())
	}
	s.startMS = float64(time.Since(began).Microseconds()) / 1000
	return stop, nil
}

func readRequests(path string) ([][]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out [][]byte
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if line := bytes.TrimSpace(sc.Bytes()); len(line) > 0 {
			out = append(out, append([]byte(nil), line...))
		}
	}
	return out, sc.Err()
}

func body(s *server, b []byte) []byte {
	if s.wrap {
		return []byte(`{"input":` + string(b) + `}`)
	}
	return b
}

// writeTargets writes vegeta's JSON target format: one POST per request,
// cycled round-robin during an attack.
func writeTargets(dir string, s *server, bodies [][]byte) (string, error) {
	path := filepath.Join(dir, s.name+".targets")
	var buf bytes.Buffer
	for _, b := range bodies {
		t := map[string]any{
			"method": "POST",
			"url":    s.base + s.decide,
			"body":   base64.StdEncoding.EncodeToString(body(s, b)),
			"header": map[string][]string{"Content-Type": {"application/json"}},
		}
		line, _ := json.Marshal(t)
		buf.Write(append(line, '\n'))
	}
	return path, os.WriteFile(path, buf.Bytes(), 0o644)
}

// sameAnswers checks that both servers decide every request alike before
// anything is timed: a fast wrong answer is not a result.
func sameAnswers(sg, op *server, bodies [][]byte) error {
	type verdict struct {
		Allow  bool
		Reason string
	}
	for _, b := range bodies {
		var a verdict
		var o struct{ Result verdict }
		if err := postJSON(sg.base+sg.decide, body(sg, b), &a); err != nil {
			return err
		}
		if err := postJSON(op.base+op.decide, body(op, b), &o); err != nil {
			return err
		}
		if a != o.Result {
			return fmt.Errorf("servers disagree on %s: scopegate %+v, opa %+v", b, a, o.Result)
		}
	}
	return nil
}

func postJSON(url string, b []byte, out any) error {
	resp, err := http.Post(url, "application/json", bytes.NewReader(b))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return fmt.Errorf("%s: %d %s", url, resp.StatusCode, raw)
	}
	return json.Unmarshal(raw, out)
}

func attack(ctx context.Context, cfg config, s *server, args []string) (report, error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.duration+30*time.Second)
	defer cancel()
	bin := filepath.Join(cfg.out, s.name+".bin")
	a := exec.CommandContext(ctx, cfg.vegeta, append([]string{"attack", "-format=json", "-targets=" + s.targets,
		"-duration=" + cfg.duration.String(), "-timeout=5s", "-keepalive=true", "-output=" + bin}, args...)...)
	if out, err := a.CombinedOutput(); err != nil {
		return report{}, fmt.Errorf("vegeta attack %s: %v: %s", s.name, err, out)
	}
	raw, err := exec.CommandContext(ctx, cfg.vegeta, "report", "-type=json", bin).Output()
	if err != nil {
		return report{}, fmt.Errorf("vegeta report: %w", err)
	}
	var r report
	if err := json.Unmarshal(raw, &r); err != nil {
		return report{}, err
	}
	if r.Success < 1 {
		// Reported, not fatal: a server that cannot keep up at a fixed rate
		// times out, and that is the measurement.
		fmt.Printf("  %s: success %.2f%%, status codes %v, first errors %v\n", s.name, 100*r.Success, r.StatusCodes, firstN(r.Errors, 2))
	}
	return r, nil
}

func firstN(s []string, n int) []string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

func best(rs []report) report {
	var b report
	for _, r := range rs {
		if r.Throughput > b.Throughput {
			b = r
		}
	}
	return b
}

func printResults(w io.Writer, cfg config, sg, op *server) error {
	st, ot := best(sg.tput), best(op.tput)
	ms := func(ns int64) string { return fmt.Sprintf("%.3f ms", float64(ns)/1e6) }
	ratio := func(a, b float64) string {
		if b == 0 {
			return "-"
		}
		return fmt.Sprintf("%.2fx", a/b)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "\nmetric\tscopegate\topa run --server\tscopegate/opa\n")
	fmt.Fprintf(tw, "throughput (%d conns, %s)\t%.0f req/s\t%.0f req/s\t%s\n", cfg.workers, cfg.duration, st.Throughput, ot.Throughput, ratio(st.Throughput, ot.Throughput))
	fmt.Fprintf(tw, "  p50 / p99 at max load\t%s / %s\t%s / %s\t\n", ms(st.Latencies.P50), ms(st.Latencies.P99), ms(ot.Latencies.P50), ms(ot.Latencies.P99))
	fmt.Fprintf(tw, "throughput success\t%.2f%%\t%.2f%%\t\n", 100*st.Success, 100*ot.Success)
	fmt.Fprintf(tw, "at %d req/s fixed: answered\t%.0f req/s\t%.0f req/s\t\n", cfg.rate, sg.fixed.Throughput, op.fixed.Throughput)
	fmt.Fprintf(tw, "  success (200 within 5 s)\t%.2f%%\t%.2f%%\t\n", 100*sg.fixed.Success, 100*op.fixed.Success)
	fmt.Fprintf(tw, "  p50\t%s\t%s\t%s\n", ms(sg.fixed.Latencies.P50), ms(op.fixed.Latencies.P50), ratio(float64(sg.fixed.Latencies.P50), float64(op.fixed.Latencies.P50)))
	fmt.Fprintf(tw, "  p99\t%s\t%s\t%s\n", ms(sg.fixed.Latencies.P99), ms(op.fixed.Latencies.P99), ratio(float64(sg.fixed.Latencies.P99), float64(op.fixed.Latencies.P99)))
	fmt.Fprintf(tw, "cold start to ready\t%.0f ms\t%.0f ms\t%s\n", sg.startMS, op.startMS, ratio(sg.startMS, op.startMS))
	fmt.Fprintf(tw, "RSS idle\t%.1f MiB\t%.1f MiB\t%s\n", float64(sg.rssIdle)/1024, float64(op.rssIdle)/1024, ratio(float64(sg.rssIdle), float64(op.rssIdle)))
	fmt.Fprintf(tw, "RSS peak (VmHWM) after load\t%.1f MiB\t%.1f MiB\t%s\n", float64(sg.rssPeak)/1024, float64(op.rssPeak)/1024, ratio(float64(sg.rssPeak), float64(op.rssPeak)))
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nscopegate writes and fsyncs a hash-chained decision-log record for every answer; opa runs with decision logging off.\n")
	res := map[string]any{"scopegate": sg, "opa": op, "config": map[string]any{
		"duration": cfg.duration.String(), "rate": cfg.rate, "workers": cfg.workers, "rounds": cfg.rounds}}
	raw, _ := json.MarshalIndent(res, "", "  ")
	return os.WriteFile(filepath.Join(cfg.out, "results.json"), raw, 0o644)
}

// MarshalJSON keeps the results file to what was measured.
func (s *server) MarshalJSON() ([]byte, error) {
	return json.Marshal(map[string]any{
		"start_ms": s.startMS, "rss_idle_kib": s.rssIdle, "rss_peak_kib": s.rssPeak,
		"throughput": s.tput, "fixed_rate": s.fixed,
	})
}

func waitReady(url string, within time.Duration) error {
	deadline := time.Now().Add(within)
	client := &http.Client{Timeout: time.Second}
	for time.Now().Before(deadline) {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
	return errors.New("not ready in time: " + url)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// rss reads a memory figure (KiB) of a process from /proc.
func rss(pid int, field string) (int64, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			return strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}
