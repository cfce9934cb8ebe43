package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scopegate/scopegate/internal/testpki"
)

// TestServeJWKSURL: serve fetches the issuer's keys from its JWKS URL,
// picks up a rotated key without a restart, and once the endpoint is down
// past the keys' lifetime denies with token_unavailable (401 never; 503 at
// the gateway endpoint), and recovers when it is back.
func TestServeJWKSURL(t *testing.T) {
	old, next := testpki.NewIssuerKid(t, "k-2026-11"), testpki.NewIssuerKid(t, "k-2026-12")
	var mu sync.Mutex
	serving, down := old, false
	jwksSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		is, d := serving, down
		mu.Unlock()
		if d {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		raw, _ := os.ReadFile(is.JWKS)
		w.Header().Set("Cache-Control", "max-age=1")
		_, _ = w.Write(raw)
	}))
	defer jwksSrv.Close()
	dir := t.TempDir()
	srv := startServe(t, dir, "--decision-log", filepath.Join(dir, "decisions.log"),
		"--token-issuer", "https://id.example.com", "--token-audience", "https://api.example.com",
		"--token-jwks", jwksSrv.URL+"/jwks", "--token-jwks-min-refresh", "200ms")
	tok := func(is *testpki.Issuer) string {
		return is.Token(t, "at+jwt", map[string]any{"iss": "https://id.example.com", "aud": "https://api.example.com",
			"sub": "u", "client_id": "c", "exp": time.Now().Add(time.Hour).Unix(), "scope": "project:read"})
	}
	decide := func(tok string) map[string]any {
		t.Helper()
		_, d := srv.decide(t, `{"access_token":"`+tok+`","action":"project:read"}`)
		return d
	}
	if d := decide(tok(old)); d["allow"] != true {
		t.Fatalf("key from the URL: %v", d)
	}
	mu.Lock()
	serving = next // the issuer rotates its key
	mu.Unlock()
	time.Sleep(250 * time.Millisecond)
	if d := decide(tok(next)); d["allow"] != true {
		t.Fatalf("rotated key, no restart: %v", d)
	}
	mu.Lock()
	down = true
	mu.Unlock()
	time.Sleep(1200 * time.Millisecond) // past max-age=1
	if d := decide(tok(next)); d["allow"] != false || d["reason"] != "token_unavailable" {
		t.Fatalf("endpoint down past the keys' lifetime: %v", d)
	}
	const issuer = `\{issuer="https://id\.example\.com"\}`
	if n := srv.metric(t, "scopegate_token_jwks_fetch_failures_total"+issuer); n < 1 {
		t.Errorf("failed fetches counted: %v", n)
	}
	if exp := srv.metric(t, "scopegate_token_jwks_expiry_timestamp_seconds"+issuer); exp > float64(time.Now().Unix()) || exp == 0 {
		t.Errorf("expiry %v: the keys should have expired", exp)
	}
	// /ready stays ready (the policy is loaded) and says why tokens fail.
	if code, _, raw := srv.get(t, "/ready"); code != 200 || !strings.Contains(raw, `"jwks":"`+jwksSrv.URL+`/jwks"`) ||
		!strings.Contains(raw, `"last_error":"GET `+jwksSrv.URL+`/jwks: 503 Service Unavailable"`) || !strings.Contains(raw, `"keys_until":`) {
		t.Errorf("/ready while the JWKS endpoint is down: %d %s", code, raw)
	}
	req, _ := http.NewRequest("GET", srv.url+"/v1/forward-auth", nil)
	req.Header.Set("X-Forwarded-Method", "GET")
	req.Header.Set("X-Forwarded-Uri", "/projects/1")
	req.Header.Set("Authorization", "Bearer "+tok(next))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 || resp.Header.Get("X-Scopegate-Reason") != "token_unavailable" {
		t.Errorf("gateway while the keys are unavailable: %d %s", resp.StatusCode, resp.Header.Get("X-Scopegate-Reason"))
	}
	mu.Lock()
	down = false
	mu.Unlock()
	time.Sleep(250 * time.Millisecond)
	if d := decide(tok(next)); d["allow"] != true {
		t.Errorf("endpoint back: %v", d)
	}
}

// TestServeJWKSURLRefusesCleartext: an http JWKS URL off loopback is
// refused at start.
func TestServeJWKSURLRefusesCleartext(t *testing.T) {
	_, stderr, code := runCLI(t, "serve", "--token-issuer", "i", "--token-audience", "a", "--token-jwks", "http://id.example.com/jwks")
	if code == 0 || !strings.Contains(stderr, "http is allowed only on loopback") {
		t.Errorf("exit %d: %s", code, stderr)
	}
}

// TestServeTokenConfig: --token-config lists two issuers with different
// audiences, one keyed by a JWKS URL and one by a file; each issuer's
// tokens are accepted for its own audience only.
func TestServeTokenConfig(t *testing.T) {
	a, b := testpki.NewIssuerKid(t, "a-1"), testpki.NewIssuerKid(t, "b-1")
	jwksSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		raw, _ := os.ReadFile(a.JWKS)
		_, _ = w.Write(raw)
	}))
	defer jwksSrv.Close()
	dir := t.TempDir()
	conf := filepath.Join(dir, "tokens.yaml")
	if err := os.WriteFile(conf, []byte(`issuers:
  - issuer: https://a.example.com
    audience: https://api.example.com
    jwks: `+jwksSrv.URL+`/jwks
  - issuer: https://b.example.com
    audience: api://scopegate
    jwks: `+b.JWKS+`
    typ: [JWT]
    scope_claim: scp
`), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := startServe(t, dir, "--decision-log", filepath.Join(dir, "decisions.log"), "--token-config", conf)
	exp := time.Now().Add(time.Hour).Unix()
	for name, tc := range map[string]struct {
		tok    string
		reason string
	}{
		"a":             {a.Token(t, "at+jwt", map[string]any{"iss": "https://a.example.com", "aud": "https://api.example.com", "sub": "u", "exp": exp, "scope": "project:read"}), "allowed"},
		"b":             {b.Token(t, "JWT", map[string]any{"iss": "https://b.example.com", "aud": "api://scopegate", "sub": "u", "exp": exp, "scp": []string{"project:read"}}), "allowed"},
		"a for b's aud": {a.Token(t, "at+jwt", map[string]any{"iss": "https://a.example.com", "aud": "api://scopegate", "sub": "u", "exp": exp, "scope": "project:read"}), "invalid_token"},
		"b signed by a": {a.Token(t, "JWT", map[string]any{"iss": "https://b.example.com", "aud": "api://scopegate", "sub": "u", "exp": exp, "scp": []string{"project:read"}}), "invalid_token"},
	} {
		if _, d := srv.decide(t, `{"access_token":"`+tc.tok+`","action":"project:read"}`); d["reason"] != tc.reason {
			t.Errorf("%s: %v", name, d)
		}
	}
	_, stderr, code := runCLI(t, "serve", "--token-config", conf, "--token-issuer", "x", "--token-jwks", b.JWKS, "--token-audience", "y")
	if code == 0 || !strings.Contains(stderr, "not both") {
		t.Errorf("--token-config with --token-issuer: exit %d: %s", code, stderr)
	}
}

// TestREADMETokenConfig: the README shows examples/tokens/issuers.yaml as
// it is, and the file loads (its Entra entry is a URL, fetched only when
// a token names it).
func TestREADMETokenConfig(t *testing.T) {
	raw, err := os.ReadFile(repoPath("examples/tokens/issuers.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	readme, _ := os.ReadFile(repoPath("README.md"))
	if !strings.Contains(string(readme), "```yaml\n"+string(raw)+"```\n") {
		t.Error("README.md does not show examples/tokens/issuers.yaml as it is")
	}
	tok, err := os.ReadFile(repoPath("examples/tokens/access_token.txt"))
	if err != nil {
		t.Fatal(err)
	}
	out, code := run(t, t.TempDir(), "decide", "--catalog", repoPath("scopes.yaml"), "--token-config", repoPath("examples/tokens/issuers.yaml"),
		"--token", strings.TrimSpace(string(tok)), "--action", "project:read")
	if code != 0 || !strings.HasPrefix(out, "allow: action project:read") {
		t.Errorf("the demo token with the example config: exit %d: %s", code, out)
	}
}

// TestServeStartsDespiteHangingJWKS: issuers whose JWKS URLs hang are
// fetched at once, so serve listens after one fetch timeout (5 s), not one
// per issuer, and denies their tokens with token_unavailable.
func TestServeStartsDespiteHangingJWKS(t *testing.T) {
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	defer hang.Close()
	dir := t.TempDir()
	conf := filepath.Join(dir, "tokens.yaml")
	var b strings.Builder
	b.WriteString("issuers:\n")
	for _, n := range []string{"a", "b", "c"} {
		b.WriteString("  - issuer: https://" + n + ".example.com\n    audience: api\n    jwks: " + hang.URL + "/" + n + "\n")
	}
	if err := os.WriteFile(conf, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	srv := startServe(t, dir, "--decision-log", filepath.Join(dir, "decisions.log"), "--token-config", conf)
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("serve listened after %v with three hanging JWKS URLs", d)
	}
	a := testpki.NewIssuerKid(t, "a-1")
	tok := a.Token(t, "at+jwt", map[string]any{"iss": "https://a.example.com", "aud": "api", "sub": "u", "exp": time.Now().Add(time.Hour).Unix()})
	if _, d := srv.decide(t, `{"access_token":"`+tok+`","action":"project:read"}`); d["reason"] != "token_unavailable" {
		t.Errorf("a token of a hanging issuer: %v", d)
	}
}
