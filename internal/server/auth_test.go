package server_test

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/scopegate/scopegate/internal/auth"
	"github.com/scopegate/scopegate/internal/server"
)

func TestAuthRoles(t *testing.T) {
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	admins := filepath.Join(dir, "admins")
	os.WriteFile(tokens, []byte("billing decide-token-0123456789\n"), 0o600)
	os.WriteFile(admins, []byte("ops admin-token-0123456789ab\n"), 0o600)
	a, err := auth.New(auth.Options{TokenFile: tokens, AdminTokenFile: admins})
	if err != nil {
		t.Fatal(err)
	}
	log := &recordingLog{}
	ts := newTestServer(t, server.New(repoEngine(t), server.Options{Log: log, Auth: a}))
	do := func(method, path, token string) int {
		var body *strings.Reader
		if method == "POST" {
			body = strings.NewReader(`{"granted_scopes":["user:read"],"action":"user:read"}`)
		} else {
			body = strings.NewReader("")
		}
		req, _ := http.NewRequest(method, ts+path, body)
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
	for _, tc := range []struct {
		method, path, token string
		want                int
	}{
		{"POST", "/v1/decide", "", 401},
		{"POST", "/v1/decide", "wrong-token-0123456789", 401},
		{"POST", "/v1/decide", "decide-token-0123456789", 200},
		{"POST", "/v1/decide", "admin-token-0123456789ab", 200},
		{"GET", "/metrics", "decide-token-0123456789", 403},
		{"GET", "/metrics", "admin-token-0123456789ab", 200},
		{"GET", "/metrics", "", 401},
		{"GET", "/health", "", 200},
		{"GET", "/ready", "", 200},
	} {
		if got := do(tc.method, tc.path, tc.token); got != tc.want {
			t.Errorf("%s %s with %q: %d, want %d", tc.method, tc.path, tc.token, got, tc.want)
		}
	}
	// Refused callers never reach the decision path, so nothing is logged
	// for them; the two admitted decisions are.
	if n := len(log.all()); n != 2 {
		t.Errorf("logged %d decisions, want 2", n)
	}
}

func TestRequestID(t *testing.T) {
	ts := newTestServer(t, server.New(repoEngine(t), server.Options{Log: &recordingLog{}}))
	req, _ := http.NewRequest("GET", ts+"/health", nil)
	req.Header.Set("X-Request-Id", "trace-42.a")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("X-Request-Id"); got != "trace-42.a" {
		t.Errorf("kept id = %q", got)
	}
	req.Header.Set("X-Request-Id", "bad id\twith junk")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("X-Request-Id"); got == "" || strings.ContainsAny(got, " \t") {
		t.Errorf("replacement id = %q", got)
	}
}

// TestCallerInDecisionLog: with auth on, each record names the service that
// asked, so auditors know who as well as what.
func TestCallerInDecisionLog(t *testing.T) {
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	os.WriteFile(tokens, []byte("billing decide-token-0123456789\n"), 0o600)
	a, err := auth.New(auth.Options{TokenFile: tokens})
	if err != nil {
		t.Fatal(err)
	}
	log := &recordingLog{}
	ts := newTestServer(t, server.New(repoEngine(t), server.Options{Log: log, Auth: a}))
	req, _ := http.NewRequest("POST", ts+"/v1/decide", strings.NewReader(`{"granted_scopes":["user:read"],"action":"user:read"}`))
	req.Header.Set("Authorization", "Bearer decide-token-0123456789")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if ev := log.all(); len(ev) != 1 || ev[0].Caller != "token:billing" {
		t.Fatalf("records %+v", ev)
	}
}
