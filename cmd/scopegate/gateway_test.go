package main

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scopegate/scopegate/internal/forwardauth"
	"github.com/scopegate/scopegate/internal/gatewayconf"
	"github.com/scopegate/scopegate/internal/testpki"
)

// gatewayBinary finds a gateway's binary. .ci/run installs nginx and
// caddy and sets SCOPEGATE_GATEWAYS, so CI fails instead of skipping.
func gatewayBinary(t *testing.T, name string) string {
	t.Helper()
	for _, p := range []string{name, "/usr/sbin/" + name, "/usr/bin/" + name} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	if os.Getenv("SCOPEGATE_GATEWAYS") != "" {
		t.Fatalf("%s not found, and SCOPEGATE_GATEWAYS is set", name)
	}
	t.Skipf("%s not installed (.ci/run installs it from Debian's packages)", name)
	return ""
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// waitListening waits until addr accepts connections, or the process ends.
func waitListening(t *testing.T, addr string, cmd *exec.Cmd, logs func() string) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if cmd.ProcessState != nil {
			t.Fatalf("%s exited: %s", cmd.Path, logs())
		}
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return
		}
	}
	t.Fatalf("%s never listened on %s: %s", cmd.Path, addr, logs())
}

// gatewaySetup is scopegate with an issuer and a gateway credential, and
// an app that echoes what reached it.
type gatewaySetup struct {
	is      *testpki.Issuer
	srv     *running
	gwToken string
	app     *httptest.Server
	appHits atomic.Int64
	dir     string
	gateway string // the gateway's address
}

func newGatewaySetup(t *testing.T) *gatewaySetup {
	t.Helper()
	g := &gatewaySetup{is: testpki.NewIssuer(t), dir: t.TempDir(), gwToken: "gw-secret-0123456789abcdef"}
	tokens := filepath.Join(g.dir, "auth-tokens")
	if err := os.WriteFile(tokens, []byte("gateway "+g.gwToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	g.srv = startServe(t, g.dir, "--decision-log", filepath.Join(g.dir, "decisions.log"), "--auth-tokens", tokens,
		"--token-issuer", "https://id.example.com", "--token-audience", "https://api.example.com", "--token-jwks", g.is.JWKS)
	g.app = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.appHits.Add(1)
		seen := map[string]string{"path": r.URL.RequestURI(), "method": r.Method}
		for k := range r.Header {
			if strings.HasPrefix(k, "X-Scopegate-") || k == "Authorization" {
				seen[k] = r.Header.Get(k)
			}
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(seen)
	}))
	t.Cleanup(g.app.Close)
	g.gateway = freeAddr(t)
	return g
}

// shipped is a configuration from examples/gateway as the test runs it.
func (g *gatewaySetup) shipped(t *testing.T, name string) string {
	t.Helper()
	raw, err := os.ReadFile(repoPath("examples/gateway/" + name))
	if err != nil {
		t.Fatal(err)
	}
	return gatewayconf.Rewrite(string(raw), strings.TrimPrefix(g.srv.url, "http://"), strings.TrimPrefix(g.app.URL, "http://"), g.gateway, g.gwToken)
}

func (g *gatewaySetup) token(t *testing.T, sub, scope string) string {
	return g.is.Token(t, "at+jwt", map[string]any{"iss": "https://id.example.com", "aud": "https://api.example.com",
		"sub": sub, "client_id": "translator-bot", "exp": time.Now().Add(time.Hour).Unix(), "scope": scope})
}

// startProcess runs a gateway until the test ends.
func startProcess(t *testing.T, dir string, env []string, name string, args ...string) (*exec.Cmd, func() string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := os.Create(filepath.Join(dir, filepath.Base(name)+".out"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); out.Close() })
	logs := func() string {
		b, _ := os.ReadFile(out.Name())
		errLog, _ := os.ReadFile(filepath.Join(dir, "error.log"))
		return string(b) + string(errLog)
	}
	return cmd, logs
}

// startNginx runs Debian's nginx on the shipped server block (see
// gatewayconf.WriteNginx).
func startNginx(t *testing.T, g *gatewaySetup) {
	bin := gatewayBinary(t, "nginx")
	dir := filepath.Join(g.dir, "nginx")
	conf, err := gatewayconf.WriteNginx(dir, g.shipped(t, "nginx.conf"))
	if err != nil {
		t.Fatal(err)
	}
	cmd, logs := startProcess(t, dir, nil, bin, "-p", dir, "-c", conf, "-e", filepath.Join(dir, "error.log"))
	waitListening(t, g.gateway, cmd, logs)
}

// startCaddy runs Debian's caddy on the shipped Caddyfile.
func startCaddy(t *testing.T, g *gatewaySetup) {
	bin := gatewayBinary(t, "caddy")
	dir := filepath.Join(g.dir, "caddy")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(conf, []byte(g.shipped(t, "Caddyfile")), 0o644); err != nil {
		t.Fatal(err)
	}
	env := []string{"SCOPEGATE_GATEWAY_TOKEN=" + g.gwToken, "HOME=" + dir, "XDG_DATA_HOME=" + dir, "XDG_CONFIG_HOME=" + dir}
	cmd, logs := startProcess(t, dir, env, bin, "run", "--config", conf, "--adapter", "caddyfile")
	waitListening(t, g.gateway, cmd, logs)
}

func TestGatewayNginx(t *testing.T) { testGateway(t, startNginx) }

func TestGatewayCaddy(t *testing.T) { testGateway(t, startCaddy) }

// testGateway: through the real gateway, an allowed request reaches the
// app with scopegate's headers (not the client's), a deny is a 403 with
// the insufficient_scope challenge, a missing or bad token a 401, and none
// of those reach the app. Every answer is in the decision log.
func testGateway(t *testing.T, start func(*testing.T, *gatewaySetup)) {
	g := newGatewaySetup(t)
	start(t, g)
	reader := g.token(t, "user-7", "project:read")
	send := func(method, path string, h map[string]string) (*http.Response, map[string]string) {
		t.Helper()
		req, _ := http.NewRequest(method, "http://"+g.gateway+path, nil)
		for k, v := range h {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		seen := map[string]string{"body": string(body)}
		if resp.StatusCode == 200 {
			if err := json.Unmarshal(body, &seen); err != nil {
				t.Fatalf("%s %s: the app's answer %q: %v", method, path, body, err)
			}
		}
		return resp, seen
	}

	// Allowed, with a forged X-Scopegate-Subject the gateway must replace.
	resp, seen := send("GET", "/projects/42?page=2", map[string]string{"Authorization": "Bearer " + reader, "X-Scopegate-Subject": "admin"})
	if resp.StatusCode != 200 {
		t.Fatalf("allowed request: %d", resp.StatusCode)
	}
	if seen["path"] != "/projects/42?page=2" || seen["X-Scopegate-Subject"] != "user-7" || seen["X-Scopegate-Client-Id"] != "translator-bot" ||
		seen["X-Scopegate-Scopes"] != "project:read" || seen["X-Scopegate-Decision-Id"] == "" || seen["X-Scopegate-Authorization"] != "" {
		t.Errorf("the app saw %v", seen)
	}
	allowedID := seen["X-Scopegate-Decision-Id"]

	// A long non-ASCII subject makes scopegate's answer headers long (9 KB
	// percent-encoded); the gateway still lets the request through.
	longSub := "urn:example:user:" + strings.Repeat("ü", 1500)
	resp, seen = send("GET", "/projects/43", map[string]string{"Authorization": "Bearer " + g.token(t, longSub, "project:read")})
	if resp.StatusCode != 200 || seen["X-Scopegate-Subject"] != forwardauth.HeaderValue(longSub) {
		t.Errorf("allowed request with a 9 KB subject header: %d", resp.StatusCode)
	}

	// Denied: a reader cannot launch.
	resp, body := send("POST", "/projects/42/launch", map[string]string{"Authorization": "Bearer " + reader})
	if resp.StatusCode != 403 || resp.Header.Get("WWW-Authenticate") != `Bearer error="insufficient_scope", scope="project:launch"` {
		t.Errorf("deny: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	if resp.Header.Get("X-Scopegate-Reason") != "missing_scope" || resp.Header.Get("X-Scopegate-Decision-Id") == "" ||
		!strings.Contains(body["body"], `"reason":"missing_scope"`) || resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("the deny's answer does not say why: %v %q", resp.Header, body["body"])
	}
	// No token, a bad token.
	resp, _ = send("GET", "/projects/42", nil)
	if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") != "Bearer" {
		t.Errorf("no token: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	resp, _ = send("GET", "/projects/42", map[string]string{"Authorization": "Bearer " + reader[:len(reader)-4] + "AAAA"})
	if resp.StatusCode != 401 || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), `Bearer error="invalid_token"`) {
		t.Errorf("bad token: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	// A client trying the other header family is refused, not routed by it.
	resp, _ = send("GET", "/projects/42/launch", map[string]string{"Authorization": "Bearer " + reader,
		"X-Original-URI": "/projects/42", "X-Original-Method": "GET", "X-Forwarded-Uri": "/projects/42", "X-Forwarded-Method": "GET"})
	if resp.StatusCode != 403 || resp.Header.Get("X-Scopegate-Reason") != "unknown_action" {
		t.Errorf("a client's forwarded headers: %d %q, want the gateway's route (GET .../launch: unknown_action)", resp.StatusCode, resp.Header.Get("X-Scopegate-Reason"))
	}
	if n := g.appHits.Load(); n != 2 {
		t.Errorf("the app was reached %d times, want 2", n)
	}

	// Every answer was logged; the allow under the id the app saw.
	out, _, code := runCLI(t, "audit", "query", filepath.Join(g.dir, "decisions.log"), "-o", "json")
	if code != 0 {
		t.Fatalf("audit query: exit %d", code)
	}
	var reasons []string
	found := false
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var rec struct {
			DecisionID string `json:"decision_id"`
			Reason     string `json:"reason"`
			Caller     string `json:"caller"`
		}
		if json.Unmarshal([]byte(line), &rec) != nil {
			continue
		}
		reasons = append(reasons, rec.Reason)
		found = found || (rec.DecisionID == allowedID && rec.Caller == "token:gateway")
	}
	if !found {
		t.Errorf("the allow %s is not in the log as the gateway's: %s", allowedID, out)
	}
	if want := "allowed allowed missing_scope missing_token invalid_token unknown_action"; strings.Join(reasons, " ") != want {
		t.Errorf("logged reasons %v, want %s", reasons, want)
	}
}

// TestREADMEShipsGatewayConfigs: the README's gateway configurations are
// the files the gateway tests run, byte for byte.
func TestREADMEShipsGatewayConfigs(t *testing.T) {
	readme, err := os.ReadFile(repoPath("README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for file, lang := range map[string]string{"nginx.conf": "nginx", "Caddyfile": "caddy", "traefik.yml": "yaml",
		"envoy-grpc.yaml": "yaml", "envoy-http.yaml": "yaml"} {
		raw, err := os.ReadFile(repoPath("examples/gateway/" + file))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(readme), "```"+lang+"\n"+string(raw)+"```\n") {
			t.Errorf("README.md does not show examples/gateway/%s as it is", file)
		}
	}
}

// TestREADMEForwardAuth: the README's forward-auth example with the demo
// token answers as the README shows.
func TestREADMEForwardAuth(t *testing.T) {
	tok, err := os.ReadFile(repoPath("examples/tokens/access_token.txt"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	srv := startServe(t, dir, "--decision-log", filepath.Join(dir, "decisions.log"), "--token-issuer", "https://id.example.com",
		"--token-audience", "https://api.example.com", "--token-jwks", repoPath("examples/tokens/jwks.json"))
	ask := func(method, uri string) *http.Response {
		req, _ := http.NewRequest("GET", srv.url+"/v1/forward-auth", nil)
		req.Header.Set("X-Forwarded-Method", method)
		req.Header.Set("X-Forwarded-Uri", uri)
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	resp := ask("GET", "/projects/42")
	for k, want := range map[string]string{"X-Scopegate-Client-Id": "translator-bot", "X-Scopegate-Reason": "allowed",
		"X-Scopegate-Scopes": "openid profile user:read project:write", "X-Scopegate-Subject": "user-7"} {
		if resp.StatusCode != 200 || resp.Header.Get(k) != want {
			t.Errorf("GET: %d, %s %q, want %q", resp.StatusCode, k, resp.Header.Get(k), want)
		}
	}
	req, _ := http.NewRequest("GET", srv.url+"/v1/forward-auth", nil)
	req.Header.Set("X-Forwarded-Method", "GET")
	req.Header.Set("X-Forwarded-Uri", "/projects/42")
	noToken, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	noToken.Body.Close()
	if noToken.StatusCode != 401 || noToken.Header.Get("Www-Authenticate") != "Bearer" || noToken.Header.Get("X-Scopegate-Reason") != "missing_token" {
		t.Errorf("no token: %d %v", noToken.StatusCode, noToken.Header)
	}
	resp = ask("POST", "/projects/42/launch")
	if resp.StatusCode != 403 || resp.Header.Get("Www-Authenticate") != `Bearer error="insufficient_scope", scope="project:launch"` ||
		resp.Header.Get("X-Scopegate-Reason") != "missing_scope" {
		t.Errorf("POST launch: %d %v", resp.StatusCode, resp.Header)
	}
}
