package main

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/scopegate/scopegate/internal/decisionlog"
	"github.com/scopegate/scopegate/internal/logship"
)

// logService is an OPA-compatible decision-log service on loopback that can
// be down (503) or up.
type logService struct {
	url    string
	mu     sync.Mutex
	up     bool
	ids    map[string]int // decision_id -> times received
	bodies [][]byte       // decompressed
	errs   []string
}

func newLogService(t *testing.T, up bool) *logService {
	s := &logService{up: up, ids: map[string]int{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		if !s.up {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		if r.URL.Path != "/logs" || r.Header.Get("Content-Encoding") != "gzip" {
			s.errs = append(s.errs, fmt.Sprintf("%s %s %v", r.Method, r.URL.Path, r.Header))
		}
		raw, _ := io.ReadAll(r.Body)
		events, err := logship.DecodeBatch(bytes.NewReader(raw))
		if err != nil {
			s.errs = append(s.errs, err.Error())
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		zr, _ := gzip.NewReader(bytes.NewReader(raw))
		plain, _ := io.ReadAll(zr)
		s.bodies = append(s.bodies, plain)
		for _, ev := range events {
			s.ids[ev.DecisionID]++
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)
	s.url = srv.URL
	return s
}

func (s *logService) setUp(up bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.up = up
}

func (s *logService) has(ids []string) (missing int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range ids {
		if s.ids[id] == 0 {
			missing++
		}
	}
	return missing
}

func (r *running) waitExit(t *testing.T) error {
	t.Helper()
	select {
	case err := <-r.done:
		return err
	case <-time.After(30 * time.Second):
		t.Fatalf("server did not exit:\n%s", r.stderr)
		return nil
	}
}

func (r *running) stop(t *testing.T) {
	t.Helper()
	if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := r.waitExit(t); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, r.stderr)
	}
}

func loggedIDs(t *testing.T, path string) map[string]bool {
	t.Helper()
	files, err := decisionlog.Files(path)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for ev, err := range decisionlog.Query(files, decisionlog.Filter{}) {
		// A kill -9 can tear the last line, which nobody was answered for
		// (the next start repairs it, see below).
		if errors.Is(err, decisionlog.ErrTruncatedTail) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		ids[ev.DecisionID] = true
	}
	return ids
}

// TestServeKill9LosesNoAcknowledgedDecision kills the server with SIGKILL in
// the middle of a concurrent load, with the remote decision-log service down:
// every decision a client got an answer for is in the local log, the chain
// verifies (after the documented repair of a torn last line, if any), and
// once the service is back and the server restarted, the service has every
// one of them too.
//
// With --decision-log-sync interval the answer waits for the write, not the
// fsync: that too survives kill -9 (the kernel has the data), which is what
// this test can check; surviving a power loss is the fsync's job.
func TestServeKill9LosesNoAcknowledgedDecision(t *testing.T) {
	for _, mode := range []string{"always", "interval"} {
		t.Run("sync="+mode, func(t *testing.T) { testKill9(t, mode) })
	}
}

func testKill9(t *testing.T, syncMode string) {
	const total, workers, killAfter = 300, 8, 120
	svc := newLogService(t, false)
	dir := t.TempDir()
	logFile := filepath.Join(dir, "decisions.log")
	flags := []string{"--decision-log-max-bytes", "64KB", "--decision-log-remote", svc.url, "--decision-log-remote-token", "tkn",
		"--decision-log-sync", syncMode}
	srv := startServe(t, dir, flags...)

	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: workers}}
	var (
		next   atomic.Int64
		mu     sync.Mutex
		acked  []string
		killed sync.Once
		wg     sync.WaitGroup
	)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > total {
					return
				}
				body := fmt.Sprintf(`{"subject":"app:load-%d","client_id":"c%d","granted_scopes":["project:write"],"action":"project:launch"}`, i, w)
				resp, err := client.Post(srv.url+"/v1/decide", "application/json", strings.NewReader(body))
				if err != nil {
					continue // no answer: nothing was promised
				}
				var d struct {
					DecisionID string `json:"decision_id"`
					Reason     string `json:"reason"`
				}
				err = json.NewDecoder(resp.Body).Decode(&d)
				resp.Body.Close()
				if err != nil || resp.StatusCode != http.StatusOK || d.Reason == "log_unavailable" {
					continue
				}
				mu.Lock()
				acked = append(acked, d.DecisionID)
				n := len(acked)
				mu.Unlock()
				if n >= killAfter {
					killed.Do(func() { _ = srv.cmd.Process.Signal(syscall.SIGKILL) })
				}
			}
		}()
	}
	wg.Wait()
	killed.Do(func() { t.Fatal("the load finished before the kill") })
	if err := srv.waitExit(t); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("want the server killed, got %v", err)
	}
	t.Logf("%d decisions acknowledged before SIGKILL", len(acked))

	// Every acknowledged decision is on disk.
	onDisk := loggedIDs(t, logFile)
	for _, id := range acked {
		if !onDisk[id] {
			t.Fatalf("acknowledged decision %s is not in the log", id)
		}
	}
	// The chain verifies, except perhaps a last line torn by the kill (a
	// record that was never acknowledged).
	stdout, stderr, code := runCLI(t, "audit", "verify", "--decision-log", logFile)
	if code != 0 && !(code == 1 && strings.Contains(stdout, ": truncated")) {
		t.Fatalf("verify after kill: exit %d\n%s%s", code, stdout, stderr)
	}
	t.Logf("after SIGKILL: %d records on disk; audit verify exit %d: %s", len(onDisk), code, strings.SplitN(stdout, "\n", 2)[0])

	// Restart with the service back: the chain continues and the spool and
	// the rest of the log reach the service.
	svc.setUp(true)
	srv = startServe(t, dir, append(flags, "--decision-log-repair-tail")...)
	if status, _ := srv.decide(t, `{"granted_scopes":["user:read"],"action":"user:read"}`); status != 200 {
		t.Fatalf("after restart: %d", status)
	}
	deadline := time.Now().Add(20 * time.Second)
	for svc.has(acked) > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := svc.has(acked); n > 0 {
		t.Fatalf("the service is missing %d of %d acknowledged decisions\n%s", n, len(acked), srv.stderr)
	}
	srv.stop(t)
	stdout, stderr, code = runCLI(t, "audit", "verify", "--decision-log", logFile)
	if code != 0 {
		t.Fatalf("verify after restart: exit %d\n%s%s", code, stdout, stderr)
	}
	svc.mu.Lock()
	defer svc.mu.Unlock()
	if len(svc.errs) > 0 {
		t.Fatalf("service saw bad requests: %v", svc.errs)
	}
}

// TestDecisionLogNeverHoldsSecrets sends secrets the way callers do (context
// keys at any depth, credential headers in any case, bearer tokens, JWTs as
// values, as subject and client_id, as a scope, as an action, inside prose,
// as an unknown field's name, under explain=full and in a batch, and a
// field masked by configuration) and greps every file under the log
// directory, rotated files and the remote spool (decompressed) included,
// and everything the remote received.
func TestDecisionLogNeverHoldsSecrets(t *testing.T) {
	// JWTs whose header decodes to JSON, each with a payload of its own.
	jwt := func(n int) string {
		return "eyJhbGciOiJIUzI1NiJ9." + base64.RawURLEncoding.EncodeToString([]byte(fmt.Sprintf(`{"sub":"SECRET-jwt-%d"}`, n))) + ".c2lnbmF0dXJl"
	}
	secrets := []string{"SECRET-ctx-1", "SECRET-ctx-2", "SECRET-bearer-3", "SECRET-owner-4",
		"SECRET-cookie-5", "SECRET-setcookie-6", "SECRET-apikey-7", "SECRET-authz-8", "SECRET-proxy-9",
		"SECRET-pw-10", "SECRET-pk-11", "SECRET-session-12"}
	for i := range 12 {
		secrets = append(secrets, jwt(i))
	}
	type call struct{ path, body string }
	calls := []call{
		{"/v1/decide", `{"subject":"app:a","granted_scopes":["user:read"],"action":"user:read","context":{"client_secret":"SECRET-ctx-1","db":{"Password":"SECRET-ctx-2"}}}`},
		{"/v1/decide", `{"subject":"app:a","granted_scopes":["user:read"],"action":"user:read","context":{"forwarded":"Bearer SECRET-bearer-3"}}`},
		{"/v1/decide", `{"subject":"app:a","granted_scopes":["project:read"],"action":"project:read","resource":{"type":"project","id":"42","owner":"SECRET-owner-4"}}`},
		{"/v1/decide", `{"subject":"app:a","granted_scopes":["user:read"],"action":"user:read","context":{"id_jwt":"` + jwt(0) + `"}}`},
		// Top-level copies: subject and client_id.
		{"/v1/decide", `{"subject":"` + jwt(1) + `","client_id":"` + jwt(2) + `","granted_scopes":["user:read"],"action":"user:read"}`},
		// Echoed in the result: a JWT as a scope, as an action.
		{"/v1/decide", `{"subject":"app:a","granted_scopes":["user:read","` + jwt(3) + `"],"action":"user:read"}`},
		{"/v1/decide", `{"subject":"app:a","granted_scopes":["user:read"],"action":"` + jwt(4) + `"}`},
		{"/v1/decide", `{"subject":"app:a","granted_scopes":["user:read"],"requested_scopes":["` + jwt(5) + `"],"action":"user:email"}`},
		// Credential headers, any case, and secret keys at any depth.
		{"/v1/decide", `{"subject":"app:a","granted_scopes":["user:read"],"action":"user:read","context":{"headers":{"Cookie":"SECRET-cookie-5","SET-COOKIE":"SECRET-setcookie-6","x-api-key":"SECRET-apikey-7","Authorization":"Basic SECRET-authz-8","proxy-authorization":"SECRET-proxy-9"}}}`},
		{"/v1/decide", `{"subject":"app:a","granted_scopes":["project:read"],"action":"project:read","resource":{"type":"project","id":"7","attributes":{"password":"SECRET-pw-10"}},"context":{"nested":{"private_key":"SECRET-pk-11","session":"SECRET-session-12"}}}`},
		// A JWT in prose, and under explain=full (the trace replays input).
		{"/v1/decide?explain=full", `{"subject":"app:a","granted_scopes":["user:read"],"action":"user:read","context":{"note":"the token ` + jwt(6) + ` was pasted here"}}`},
		{"/v1/decide?explain=full", `{"subject":"app:a","granted_scopes":["user:read","` + jwt(7) + `"],"action":"user:read"}`},
		// A batch: shared token fields and per-check echoes.
		{"/v1/decide/batch", `{"subject":"` + jwt(8) + `","scope":"user:read ` + jwt(9) + `","context":{"Cookie":"SECRET-cookie-5"},"checks":[{"action":"user:read"},{"action":"` + jwt(10) + `"}]}`},
		// Refused input: the error names the unknown field.
		{"/v1/decide", `{"` + jwt(11) + `":1,"granted_scopes":["user:read"],"action":"user:read"}`},
	}
	svc := newLogService(t, false)
	dir := t.TempDir()
	logDir := filepath.Join(dir, "logs")
	// The mask pointer comes from the environment, as operators may set it.
	t.Setenv("SCOPEGATE_DECISION_LOG_MASK", "/input/resource/owner")
	srv := startServe(t, dir, "--decision-log", filepath.Join(logDir, "decisions.log"),
		"--decision-log-max-bytes", "4KB", "--decision-log-remote", svc.url)
	answered := 0
	for range 3 {
		for _, c := range calls {
			resp, err := http.Post(srv.url+c.path, "application/json", strings.NewReader(c.body))
			if err != nil {
				t.Fatal(err)
			}
			answer, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 && resp.StatusCode != 400 {
				t.Fatalf("%s %s: %d %s", c.path, c.body, resp.StatusCode, answer)
			}
			answered += 1 + strings.Count(c.body, `{"action"`)
		}
	}
	answered -= 3 // a batch counts its checks, not itself
	// Wait for the shipper to spool (the service is down).
	spool := filepath.Join(logDir, "decisions.log.spool")
	deadline := time.Now().Add(10 * time.Second)
	for {
		m, _ := filepath.Glob(filepath.Join(spool, "*.json.gz"))
		if len(m) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing spooled:\n%s", srv.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	srv.stop(t)

	var files, gz int
	var masked bool
	err := filepath.WalkDir(logDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if strings.HasSuffix(p, ".gz") {
			zr, err := gzip.NewReader(bytes.NewReader(b))
			if err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
			if b, err = io.ReadAll(zr); err != nil {
				return err
			}
			gz++
		}
		files++
		for _, s := range secrets {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("%s contains the secret %q", p, s)
			}
		}
		masked = masked || bytes.Contains(b, []byte(`"masked":["/input/resource/owner"]`))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 4 || gz == 0 || !masked {
		t.Fatalf("checked %d files (%d spooled batches), owner masked: %v", files, gz, masked)
	}
	rotated, _ := decisionlog.Files(filepath.Join(logDir, "decisions.log"))
	if len(rotated) < 2 {
		t.Fatalf("the log never rotated: %v", rotated)
	}

	// What the service receives is the spool: bring it up and check that too.
	svc.setUp(true)
	srv = startServe(t, dir, "--decision-log", filepath.Join(logDir, "decisions.log"), "--decision-log-remote", svc.url)
	deadline = time.Now().Add(20 * time.Second)
	for svc.received() < answered && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	srv.stop(t)
	svc.mu.Lock()
	defer svc.mu.Unlock()
	if len(svc.ids) != answered {
		t.Fatalf("service received %d decisions, want %d", len(svc.ids), answered)
	}
	for _, b := range svc.bodies {
		for _, s := range secrets {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("the service received the secret %q", s)
			}
		}
	}
}

func (s *logService) received() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.ids)
}

func TestServeDecisionLogFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--decision-log-on-full", "drop"}, "want block or fail-closed"},
		{[]string{"--decision-log-sync", "never"}, "want always or interval"},
		{[]string{"--decision-log-mask", "input/x"}, "must start with '/'"},
		{[]string{"--decision-log-max-bytes", "lots"}, "want a size"},
		{[]string{"--decision-log-retention", "forever"}, "want a duration"},
		{[]string{"--decision-log", "-", "--decision-log-remote", "http://127.0.0.1:1"}, "need a decision-log file"},
		{[]string{"--decision-log-spool", "x"}, "need --decision-log-remote"},
	} {
		args := append([]string{"serve", "--addr", "127.0.0.1:0", "--catalog", repoPath("scopes.yaml"), "--policies", repoPath("policies"),
			"--decision-log", filepath.Join(t.TempDir(), "d.log")}, tc.args...)
		_, stderr, code := runCLI(t, args...)
		if code == 0 || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q, want %q", tc.args, code, stderr, tc.want)
		}
	}
}

func TestServeRefusesTornLogWithoutRepair(t *testing.T) {
	dir := t.TempDir()
	path := writeAuditLog(t, dir, 3)
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(`{"decision_id":"torn`); err != nil {
		t.Fatal(err)
	}
	f.Close()
	_, stderr, code := runCLI(t, "serve", "--addr", "127.0.0.1:0", "--catalog", repoPath("scopes.yaml"), "--policies", repoPath("policies"), "--decision-log", path)
	if code == 0 || !strings.Contains(stderr, "truncated record") || !strings.Contains(stderr, "--decision-log-repair-tail") {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	srv := startServe(t, dir, "--decision-log", path, "--decision-log-repair-tail")
	srv.decide(t, `{"granted_scopes":["user:read"],"action":"user:read"}`)
	srv.stop(t)
	if stdout, stderr, code := runCLI(t, "audit", "verify", "--decision-log", path); code != 0 || !strings.Contains(stdout, "ok: 4 records") {
		t.Fatalf("verify: %d %s %s", code, stdout, stderr)
	}
}
