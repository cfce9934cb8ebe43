package main

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scopegate/scopegate/internal/testpki"
)

// TestServeIntrospection: opaque tokens are checked at an RFC 7662
// endpoint with scopegate's client credentials: active grants its scopes,
// inactive is invalid_token, a failing or slow endpoint is
// token_unavailable (never an allow); JWTs from the configured issuer are
// still verified locally; no opaque token reaches any file serve wrote.
func TestServeIntrospection(t *testing.T) {
	var calls atomic.Int64
	as := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if id, secret, ok := r.BasicAuth(); !ok || id != "scopegate" || secret != "introspect-secret-1" {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		_ = r.ParseForm()
		tok := r.PostForm.Get("token")
		switch {
		case strings.HasPrefix(tok, "opaque-active-"):
			_ = json.NewEncoder(w).Encode(map[string]any{"active": true, "scope": "project:read", "sub": "user-9",
				"client_id": "mobile-app", "exp": time.Now().Add(time.Hour).Unix(), "iss": "https://as.example.com"})
		case strings.HasPrefix(tok, "opaque-fail-"):
			http.Error(w, "boom", http.StatusInternalServerError)
		case strings.HasPrefix(tok, "opaque-slow-"):
			select {
			case <-time.After(3 * time.Second):
			case <-r.Context().Done():
			}
		default:
			_, _ = w.Write([]byte(`{"active":false}`))
		}
	}))
	defer as.Close()
	is := testpki.NewIssuer(t)
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "introspection-secret")
	if err := os.WriteFile(secretFile, []byte("introspect-secret-1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := startServe(t, dir, "--decision-log", filepath.Join(dir, "logs", "decisions.log"),
		"--token-issuer", "https://id.example.com", "--token-audience", "https://api.example.com", "--token-jwks", is.JWKS,
		"--token-introspection-url", as.URL+"/introspect", "--token-introspection-client-id", "scopegate",
		"--token-introspection-client-secret-file", secretFile, "--token-introspection-timeout", "300ms")
	opaque := map[string]string{
		"active":   "opaque-active-Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5",
		"inactive": "opaque-revoked-YmF6cXV4MTIzNDU2Nzg5MDEy",
		"fail":     "opaque-fail-cXV4MTIzNDU2Nzg5MDEyMzQ1",
		"slow":     "opaque-slow-MTIzNDU2Nzg5MDEyMzQ1Njc4",
	}
	decide := func(tok, action string) map[string]any {
		t.Helper()
		code, d := srv.decide(t, `{"access_token":"`+tok+`","action":"`+action+`"}`)
		if code != 200 {
			t.Fatalf("status %d: %v", code, d)
		}
		return d
	}
	if d := decide(opaque["active"], "project:read"); d["allow"] != true {
		t.Errorf("active: %v", d)
	}
	if d := decide(opaque["active"], "project:launch"); d["reason"] != "missing_scope" {
		t.Errorf("active, missing scope: %v", d)
	}
	if d := decide(opaque["inactive"], "project:read"); d["reason"] != "invalid_token" || !strings.Contains(strings.Join(toStrings(d["explain"]), " "), "not active") {
		t.Errorf("inactive: %v", d)
	}
	for _, k := range []string{"fail", "slow"} {
		start := time.Now()
		if d := decide(opaque[k], "project:read"); d["allow"] != false || d["reason"] != "token_unavailable" ||
			!strings.HasPrefix(strings.Join(toStrings(d["explain"]), " "), "the access token cannot be checked now: the introspection endpoint is unavailable") {
			t.Errorf("%s: %v", k, d)
		}
		if time.Since(start) > 2*time.Second {
			t.Errorf("%s: answered after %v", k, time.Since(start))
		}
	}
	before := calls.Load()
	jwt := is.Token(t, "at+jwt", map[string]any{"iss": "https://id.example.com", "aud": "https://api.example.com", "sub": "u",
		"client_id": "c", "exp": time.Now().Add(time.Hour).Unix(), "scope": "project:read"})
	if d := decide(jwt, "project:read"); d["allow"] != true || calls.Load() != before {
		t.Errorf("a JWT went to introspection or was refused: %v (%d calls)", d, calls.Load()-before)
	}
	decide(opaque["active"], "project:read") // cached: no call
	if calls.Load() != before {
		t.Errorf("an active answer was not cached")
	}
	for name, want := range map[string]float64{"scopegate_token_introspection_calls_total": 4, "scopegate_token_introspection_failures_total": 2,
		"scopegate_token_introspection_cache_hits_total": 2} {
		if got := srv.metric(t, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	srv.stop(t)

	err := filepath.WalkDir(dir, func(p string, de fs.DirEntry, err error) error {
		if err != nil || de.IsDir() || p == secretFile {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, tok := range opaque {
			if bytes.Contains(b, []byte(tok)) || bytes.Contains(b, []byte(tok[len(tok)-16:])) {
				t.Errorf("%s holds an opaque token", p)
			}
		}
		if bytes.Contains(b, []byte("introspect-secret-1")) {
			t.Errorf("%s holds the introspection secret", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestIntrospectionSecretNeverAFlag: the secret comes from a file or the
// environment; without either, serve refuses to start.
func TestIntrospectionSecretNeverAFlag(t *testing.T) {
	_, stderr, code := runCLI(t, "serve", "--token-introspection-url", "https://as.example.com/introspect", "--token-introspection-client-id", "x")
	if code == 0 || !strings.Contains(stderr, "SCOPEGATE_TOKEN_INTROSPECTION_CLIENT_SECRET") {
		t.Errorf("no secret: exit %d: %s", code, stderr)
	}
	_, stderr, code = runCLI(t, "serve", "--token-introspection-client-secret", "x")
	if code == 0 {
		t.Errorf("a secret flag was accepted: %s", stderr)
	}
	// From the environment, sent as HTTP Basic.
	as := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, secret, _ := r.BasicAuth(); secret != "from-env-0123" {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		_, _ = w.Write([]byte(`{"active":true,"scope":"project:read"}`))
	}))
	defer as.Close()
	t.Setenv("SCOPEGATE_TOKEN_INTROSPECTION_CLIENT_SECRET", "from-env-0123")
	dir := t.TempDir()
	srv := startServe(t, dir, "--decision-log", filepath.Join(dir, "decisions.log"),
		"--token-introspection-url", as.URL, "--token-introspection-client-id", "scopegate")
	if _, d := srv.decide(t, `{"access_token":"opaque-abcdefghijklmnop","action":"project:read"}`); d["allow"] != true {
		t.Errorf("secret from the environment: %v", d)
	}
}

func toStrings(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}
