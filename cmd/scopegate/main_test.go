package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/scopegate/scopegate/internal/decisionlog"
)

// binary is the scopegate command built once for these tests, so they run
// the real program as an operator would.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "scopegate-bin")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "scopegate")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build scopegate: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func repoPath(p string) string {
	abs, err := filepath.Abs(filepath.Join("..", "..", p))
	if err != nil {
		panic(err)
	}
	return abs
}

type running struct {
	cmd    *exec.Cmd
	url    string
	stderr *bytes.Buffer
	done   chan error
	grpc   string // --grpc-addr's address, set before url
}

// startServe runs `scopegate serve` on a free loopback port and waits until
// it says where it listens.
func startServe(t *testing.T, dir string, args ...string) *running {
	t.Helper()
	return startServeArgs(t, dir, append([]string{"--catalog", repoPath("scopes.yaml"), "--policies", repoPath("policies")}, args...)...)
}

// startServeArgs is startServe without the default --catalog/--policies.
func startServeArgs(t *testing.T, dir string, args ...string) *running {
	t.Helper()
	return startServeUnder(t, dir, nil, args...)
}

// startServeUnder runs serve as startServeArgs does, through wrapper (a
// command that execs its arguments, e.g. to set a resource limit).
func startServeUnder(t *testing.T, dir string, wrapper []string, args ...string) *running {
	t.Helper()
	argv := append(append(slices.Clone(wrapper), binary, "serve", "--addr", "127.0.0.1:0"), args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	pipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := &running{cmd: cmd, stderr: &bytes.Buffer{}, done: make(chan error, 1)}
	addr := make(chan string, 1)
	// With --bundle, serve listens before the first bundle is polled; the
	// tests start from the state after that first poll.
	firstPoll := make(chan struct{}, 1)
	go func() {
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			line := sc.Text()
			r.stderr.WriteString(line + "\n")
			var rec struct{ Msg, Addr string }
			if json.Unmarshal([]byte(line), &rec) == nil {
				switch {
				case rec.Msg == "ext_authz gRPC listening":
					r.grpc = rec.Addr // logged before "listening": read after addr
				case rec.Msg == "listening":
					addr <- rec.Addr
				case rec.Msg == "policy loaded" || strings.HasPrefix(rec.Msg, "no policy active"):
					select {
					case firstPoll <- struct{}{}:
					default:
					}
				}
			}
		}
		r.done <- cmd.Wait()
	}()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	select {
	case a := <-addr:
		r.url = "http://" + a
	case <-time.After(30 * time.Second):
		t.Fatalf("server did not start:\n%s", r.stderr)
	}
	if slices.Contains(args, "--bundle") {
		select {
		case <-firstPoll:
		case <-time.After(30 * time.Second):
			t.Fatalf("first bundle poll did not finish:\n%s", r.stderr)
		}
	}
	return r
}

func (r *running) decide(t *testing.T, body string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Post(r.url+"/v1/decide", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, out
}

func TestServeEndToEnd(t *testing.T) {
	dir := t.TempDir()
	srv := startServe(t, dir)

	for _, tc := range []struct {
		name, body, reason string
		allow              bool
	}{
		{"manage allows launch", `{"granted_scopes":["project:manage"],"action":"project:launch"}`, "allowed", true},
		{"write allows read", `{"granted_scopes":["project:write"],"action":"project:read"}`, "allowed", true},
		{"write denies launch", `{"granted_scopes":"project:write","action":"project:launch"}`, "missing_scope", false},
		{"user:manage reads email", `{"granted_scopes":["user:manage"],"method":"GET","path":"/me/email"}`, "allowed", true},
		{"empty acts as public", `{"granted_scopes":[],"action":"public"}`, "allowed", true},
		{"unknown scope", `{"granted_scopes":["user:read","user:delete"],"action":"user:read"}`, "unknown_scope", false},
	} {
		status, d := srv.decide(t, tc.body)
		if status != 200 || d["allow"] != tc.allow || d["reason"] != tc.reason {
			t.Errorf("%s: status %d, %v", tc.name, status, d)
		}
	}
	_, d := srv.decide(t, `{"granted_scopes":"project:write","action":"project:launch"}`)
	if !strings.Contains(fmt.Sprint(d["remedy"]), "project:launch") || fmt.Sprint(d["missing"]) != "[project:launch]" {
		t.Errorf("remedy/missing: %v", d)
	}
	_, d = srv.decide(t, `{"granted_scopes":["user:read","user:delete"],"action":"user:read"}`)
	if fmt.Sprint(d["unknown_scopes"]) != "[user:delete]" {
		t.Errorf("unknown scope not named: %v", d)
	}
	status, d := srv.decide(t, `{"granted_scopes":["user:read"],"action":"user:read","extra":1}`)
	if status != 400 || d["error"].(map[string]any)["field"] != "extra" {
		t.Errorf("bad input: %d %v", status, d)
	}

	// SIGTERM drains and flushes: every answered decision is on disk and the
	// hash chain verifies.
	if err := srv.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-srv.done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, srv.stderr)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no exit after SIGTERM")
	}
	files, err := decisionlog.Files(filepath.Join(dir, "decisions.log"))
	if err != nil {
		t.Fatal(err)
	}
	report, err := decisionlog.Verify(files)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if report.Records != 9 {
		t.Fatalf("decision log holds %d records, want 9", report.Records)
	}

	// A record carries OPA's decision-log members and scopegate's own.
	data, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	var rec map[string]any
	if err := json.Unmarshal(data[:bytes.IndexByte(data, '\n')], &rec); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"decision_id", "timestamp", "path", "input", "result", "bundles", "metrics", "labels", "requested_by", "reason", "allow", "prev_hash", "hash"} {
		if _, ok := rec[k]; !ok {
			t.Errorf("record has no %q: %v", k, rec)
		}
	}
	if m, _ := rec["metrics"].(map[string]any); m["timer_server_handler_ns"] == nil {
		t.Errorf("metrics = %v, want timer_server_handler_ns", rec["metrics"])
	}
	if in, _ := rec["input"].(map[string]any); fmt.Sprint(in["granted_scopes"]) != "[project:manage]" || in["action"] != "project:launch" {
		t.Errorf("input = %v", rec["input"])
	}
	if res, _ := rec["result"].(map[string]any); res["reason"] != "allowed" || res["allow"] != true {
		t.Errorf("result = %v", rec["result"])
	}
}

func TestServeRefusesBrokenPolicy(t *testing.T) {
	dir := t.TempDir()
	pol := filepath.Join(dir, "policies")
	if err := os.MkdirAll(pol, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(pol, "authz.rego"), []byte("package scopegate.authz\n\ndecision := {\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(binary, "serve", "--addr", "127.0.0.1:0", "--catalog", repoPath("scopes.yaml"), "--policies", pol).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "authz.rego:4: rego_parse_error") {
		t.Fatalf("want a located compile error, got %v:\n%s", err, out)
	}
}

func TestEnvConfig(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(binary, "gen", "--catalog", repoPath("scopes.yaml"))
	cmd.Env = append(os.Environ(), "SCOPEGATE_OUT="+filepath.Join(dir, "env.json"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "env.json")); err != nil {
		t.Fatal("SCOPEGATE_OUT was not used")
	}
}

func TestGen(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "data.json")
	run := func(args ...string) (string, int) {
		cmd := exec.Command(binary, append([]string{"gen", "--catalog", repoPath("scopes.yaml"), "--out", out}, args...)...)
		b, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return string(b), code
	}
	if msg, code := run("--check"); code != 1 || !strings.Contains(msg, "stale") {
		t.Fatalf("check before gen: %d %s", code, msg)
	}
	if msg, code := run(); code != 0 {
		t.Fatalf("gen: %d %s", code, msg)
	}
	if msg, code := run("--check"); code != 0 {
		t.Fatalf("check after gen: %d %s", code, msg)
	}
	committed, err := os.ReadFile(repoPath("bundles/scopegate/data.json"))
	if err != nil {
		t.Fatal(err)
	}
	fresh, _ := os.ReadFile(out)
	if !bytes.Equal(committed, fresh) {
		t.Fatal("bundles/scopegate/data.json is stale: run go run ./cmd/scopegate gen")
	}
	if err := os.WriteFile(out, append(fresh, ' '), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, code := run("--check"); code != 1 {
		t.Fatal("check missed an edited file")
	}
}

func TestGenReportsCatalogErrors(t *testing.T) {
	dir := t.TempDir()
	cat := filepath.Join(dir, "scopes.yaml")
	src := "version: 1\ndefault: public\nscopes:\n  - {name: public, description: P}\n  - {name: a:one, description: 1, includes: [a:two]}\n  - {name: a:two, description: 2, includes: [a:one]}\n"
	if err := os.WriteFile(cat, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary, "gen", "--catalog", cat, "--out", filepath.Join(dir, "out.json"))
	b, err := cmd.CombinedOutput()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 2 || !strings.Contains(string(b), cat+":5: inclusion cycle: a:one -> a:two -> a:one") {
		t.Fatalf("got %v:\n%s", err, b)
	}
}
