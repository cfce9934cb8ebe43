package server_test

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/scopegate/scopegate/internal/auth"
	"github.com/scopegate/scopegate/internal/server"
)

// TestBrowserCannotDriveAnOpenServer: with authentication off, a
// DNS-rebinding page (a foreign Host) and cross-site browser requests (a
// foreign Origin, Sec-Fetch-Site cross-site or same-site) are refused with
// a 403 saying why; curl, the server's own pages and IP or loopback Hosts
// are served. With authentication on, the bearer token is the guard.
func TestBrowserCannotDriveAnOpenServer(t *testing.T) {
	const decide = `{"granted_scopes":["user:read"],"action":"user:read"}`
	open := server.New(repoEngine(t), server.Options{AllowedHosts: []string{"scopegate.internal"}})
	for _, tc := range []struct {
		name, method, path, host string
		headers                  map[string]string
		want                     int
		why                      string
	}{
		{"curl on 127.0.0.1", "POST", "/v1/decide", "127.0.0.1:8282", nil, 200, ""},
		{"curl on localhost", "POST", "/v1/decide", "localhost:8282", nil, 200, ""},
		{"curl on [::1]", "POST", "/v1/decide", "[::1]:8282", nil, 200, ""},
		{"an allowed host", "POST", "/v1/decide", "scopegate.internal:8282", nil, 200, ""},
		{"the UI's own fetch", "POST", "/v1/decide", "127.0.0.1:8282", map[string]string{"Origin": "http://127.0.0.1:8282", "Sec-Fetch-Site": "same-origin"}, 200, ""},
		{"the UI page load", "GET", "/ui/", "localhost:8282", map[string]string{"Sec-Fetch-Site": "none"}, 200, ""},
		{"DNS rebinding reads the auditor endpoints", "GET", "/v1/admin/actions", "evil.example:8282", map[string]string{"Sec-Fetch-Site": "same-origin"}, 403, "Host evil.example:8282"},
		{"cross-site text/plain POST", "POST", "/v1/decide", "127.0.0.1:8282", map[string]string{"Origin": "https://evil.example", "Content-Type": "text/plain", "Sec-Fetch-Site": "cross-site"}, 403, "another site"},
		{"a foreign Origin alone", "POST", "/v1/decide", "127.0.0.1:8282", map[string]string{"Origin": "https://evil.example"}, 403, "origin https://evil.example"},
		{"another local app (same-site)", "POST", "/v1/decide", "localhost:8282", map[string]string{"Origin": "http://localhost:3000", "Sec-Fetch-Site": "same-site"}, 403, "another site"},
		{"an opaque Origin", "POST", "/v1/decide", "127.0.0.1:8282", map[string]string{"Origin": "null"}, 403, "origin null"},
	} {
		var body *strings.Reader
		if tc.method == "POST" {
			body = strings.NewReader(decide)
		} else {
			body = strings.NewReader("")
		}
		req := httptest.NewRequest(tc.method, tc.path, body)
		req.Host = tc.host
		for k, v := range tc.headers {
			req.Header.Set(k, v)
		}
		rec := httptest.NewRecorder()
		open.ServeHTTP(rec, req)
		if rec.Code != tc.want || !strings.Contains(rec.Body.String(), tc.why) {
			t.Errorf("%s: %d %s", tc.name, rec.Code, rec.Body)
		}
	}

	// Authentication on: a foreign Host or Origin still needs the token.
	tokens := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(tokens, []byte("svc 0123456789abcdef0123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	authn, err := auth.New(auth.Options{TokenFile: tokens})
	if err != nil {
		t.Fatal(err)
	}
	guarded := server.New(repoEngine(t), server.Options{Auth: authn})
	req := httptest.NewRequest("POST", "/v1/decide", strings.NewReader(decide))
	req.Host = "scopegate.example.com"
	req.Header.Set("Origin", "https://app.example.com")
	req.Header.Set("Authorization", "Bearer 0123456789abcdef0123")
	rec := httptest.NewRecorder()
	guarded.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Errorf("authenticated caller behind a proxy: %d %s", rec.Code, rec.Body)
	}
}
