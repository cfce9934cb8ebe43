package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestServeRefusesOpenNonLoopback(t *testing.T) {
	out, err := exec.Command(binary, "serve", "--addr", "0.0.0.0:0", "--catalog", repoPath("scopes.yaml"),
		"--policies", repoPath("policies"), "--decision-log", filepath.Join(t.TempDir(), "d.log")).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "without authentication") {
		t.Fatalf("want a refusal, got %v:\n%s", err, out)
	}
}

func TestServeWithTokens(t *testing.T) {
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	if err := os.WriteFile(tokens, []byte("billing s3cret-token-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := startServe(t, dir, "--auth-tokens", tokens)
	call := func(token string) int {
		req, _ := http.NewRequest("POST", srv.url+"/v1/decide", strings.NewReader(`{"granted_scopes":["user:read"],"action":"user:read"}`))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := call(""); got != 401 {
		t.Errorf("no token: %d", got)
	}
	if got := call("s3cret-token-0123456789"); got != 200 {
		t.Errorf("good token: %d", got)
	}
	// The token never reaches the decision log.
	raw, _ := os.ReadFile(filepath.Join(dir, "decisions.log"))
	if strings.Contains(string(raw), "s3cret-token") {
		t.Error("token written to the decision log")
	}
}

// TestSlowClientsAreCutOff: a client that stops mid-headers or mid-body is
// disconnected by the server's timeouts, and the server keeps answering
// others meanwhile.
func TestSlowClientsAreCutOff(t *testing.T) {
	srv := startServe(t, t.TempDir(), "--read-header-timeout", "300ms", "--read-timeout", "600ms")
	addr := strings.TrimPrefix(srv.url, "http://")
	for name, partial := range map[string]string{
		"headers": "POST /v1/decide HTTP/1.1\r\nHost: x\r\n",
		"body":    "POST /v1/decide HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"granted",
	} {
		t.Run(name, func(t *testing.T) {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := conn.Write([]byte(partial)); err != nil {
				t.Fatal(err)
			}
			// Meanwhile a well-behaved client is served.
			if status, _ := srv.decide(t, `{"granted_scopes":["user:read"],"action":"user:read"}`); status != 200 {
				t.Errorf("other client got %d", status)
			}
			began := time.Now()
			_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, err = io.ReadAll(conn) // returns when the server closes
			if err != nil {
				t.Fatalf("server did not close the stalled connection: %v", err)
			}
			if waited := time.Since(began); waited > 3*time.Second {
				t.Errorf("closed after %s", waited)
			}
		})
	}
}

// TestConfigFile: settings come from --config, lose to the environment and
// to flags, and an unknown key is an error naming its line.
func TestConfigFile(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "scopegate.yaml")
	out := filepath.Join(dir, "from-config.json")
	write := func(body string) {
		if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	run := func(env []string, args ...string) (string, error) {
		cmd := exec.Command(binary, append([]string{"gen", "--config", cfg, "--catalog", repoPath("scopes.yaml"), "--policies", repoPath("policies")}, args...)...)
		cmd.Env = append(os.Environ(), env...)
		b, err := cmd.CombinedOutput()
		return string(b), err
	}
	// addr belongs to serve: skipped by gen, not an error.
	write("out: " + out + "\naddr: 127.0.0.1:9999\n")
	if msg, err := run(nil); err != nil || !strings.Contains(msg, "wrote "+out) {
		t.Fatalf("config not applied: %v %s", err, msg)
	}
	envOut := filepath.Join(dir, "from-env.json")
	if msg, err := run([]string{"SCOPEGATE_OUT=" + envOut}); err != nil || !strings.Contains(msg, "wrote "+envOut) {
		t.Fatalf("environment did not win: %v %s", err, msg)
	}
	flagOut := filepath.Join(dir, "from-flag.json")
	if msg, err := run([]string{"SCOPEGATE_OUT=" + envOut}, "--out", flagOut); err != nil || !strings.Contains(msg, "wrote "+flagOut) {
		t.Fatalf("flag did not win: %v %s", err, msg)
	}
	write("out: " + out + "\nadress: x\n")
	if msg, err := run(nil); err == nil || !strings.Contains(msg, "scopegate.yaml:2: unknown setting \"adress\"") {
		t.Fatalf("unknown key: %v %s", err, msg)
	}
}

// TestIdleConnectionsCannotLockOutClients runs serve under a 256
// file-descriptor limit and holds more idle connections than that
// (keep-alive ones, idle after a request): a new client still
// gets an answer from /health and /v1/decide, because serve keeps its
// connections under --max-connections (by default the fd limit less 128).
func TestIdleConnectionsCannotLockOutClients(t *testing.T) {
	const fds, idle = 256, 300
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash to set the fd limit")
	}
	dir := t.TempDir()
	srv := startServeUnder(t, dir, []string{"bash", "-c", fmt.Sprintf(`ulimit -n %d && exec "$0" "$@"`, fds)},
		"--catalog", repoPath("scopes.yaml"), "--policies", repoPath("policies"))
	addr := strings.TrimPrefix(srv.url, "http://")
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for i := range idle {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
		// A keep-alive connection, idle after one request (the kind the
		// server keeps for --idle-timeout, 2 minutes).
		fmt.Fprintf(c, "GET /health HTTP/1.1\r\nHost: %s\r\n\r\n", addr)
		c.SetReadDeadline(time.Now().Add(time.Second))
		if _, err := http.ReadResponse(bufio.NewReader(c), nil); err != nil && i < fds/2 {
			t.Fatalf("connection %d: %v", i, err)
		}
	}
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(srv.url + "/health")
	if err != nil {
		t.Fatalf("/health past %d idle connections: %v", len(held), err)
	}
	resp.Body.Close()
	if status, d := srv.decide(t, `{"granted_scopes":["user:read"],"action":"user:read"}`); status != 200 || d["allow"] != true {
		t.Fatalf("decide past the limit: %d %v", status, d)
	}
	if open := srv.metric(t, "scopegate_connections_open"); open > fds-128 {
		t.Errorf("%v connections open, bound %d", open, fds-128)
	}
}
