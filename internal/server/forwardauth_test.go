package server_test

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scopegate/scopegate/internal/auth"
	"github.com/scopegate/scopegate/internal/server"
	"github.com/scopegate/scopegate/internal/testpki"
	"github.com/scopegate/scopegate/internal/token"
)

// forwardAuthServer serves the repository's policy with tokens from is
// and logs into log.
func forwardAuthServer(t *testing.T, is *testpki.Issuer, log server.DecisionLog, a *auth.Authenticator) string {
	t.Helper()
	keys, err := token.LoadJWKS(is.JWKS)
	if err != nil {
		t.Fatal(err)
	}
	return newTestServer(t, server.New(repoEngine(t), server.Options{Log: log, Auth: a,
		Tokens: token.Single(&token.Config{Issuer: "iss", Audience: "aud", Keys: keys})}))
}

func userToken(t *testing.T, is *testpki.Issuer, sub, scope string) string {
	return is.Token(t, "at+jwt", map[string]any{"iss": "iss", "aud": "aud", "sub": sub, "client_id": "app-1",
		"exp": time.Now().Add(time.Hour).Unix(), "scope": scope})
}

type forwarded struct {
	status int
	header http.Header
	body   decideResponse
}

func forward(t *testing.T, url, method string, h map[string]string) forwarded {
	t.Helper()
	req, _ := http.NewRequest(method, url+"/v1/forward-auth", nil)
	for k, v := range h {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out decideResponse
	if method != http.MethodHead {
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			t.Fatal(err)
		}
	}
	return forwarded{resp.StatusCode, resp.Header, out}
}

// TestForwardAuth: each way a gateway's subrequest can go, with the status,
// challenge and upstream headers the gateway acts on, and every answer
// logged under the id it carries.
func TestForwardAuth(t *testing.T) {
	is := testpki.NewIssuer(t)
	log := &recordingLog{}
	url := forwardAuthServer(t, is, log, nil)
	reader := "Bearer " + userToken(t, is, "user-7", "project:read")
	nginx := func(method, uri string) map[string]string {
		return map[string]string{"X-Original-Method": method, "X-Original-URI": uri, "Authorization": reader}
	}
	traefik := func(method, uri string) map[string]string {
		return map[string]string{"X-Forwarded-Method": method, "X-Forwarded-Uri": uri, "Authorization": reader}
	}
	with := func(h map[string]string, k, v string) map[string]string {
		h[k] = v
		if v == "" {
			delete(h, k)
		}
		return h
	}
	for _, tc := range []struct {
		name      string
		method    string // of the subrequest
		h         map[string]string
		status    int
		reason    string
		challenge string
		field     string // of a 400
	}{
		{"nginx allowed", "GET", nginx("GET", "/projects/42"), 200, "allowed", "", ""},
		{"traefik allowed, query cut", "GET", traefik("GET", "/projects/42/documents?page=2"), 200, "allowed", "", ""},
		{"any subrequest method", "POST", traefik("GET", "/projects/42"), 200, "allowed", "", ""},
		{"percent-encoded id", "GET", nginx("GET", "/projects/a%20b"), 200, "allowed", "", ""},
		{"missing scope", "GET", nginx("POST", "/projects/42/launch"), 403, "missing_scope", `Bearer error="insufficient_scope", scope="project:launch"`, ""},
		{"no route", "GET", nginx("GET", "/nowhere"), 403, "unknown_action", `Bearer error="insufficient_scope"`, ""},
		{"no token", "GET", with(nginx("GET", "/projects/42"), "Authorization", ""), 401, "missing_token", "Bearer", ""},
		{"basic auth is no token", "GET", with(nginx("GET", "/projects/42"), "Authorization", "Basic dXNlcjpwYXNz"), 401, "missing_token", "Bearer", ""},
		{"bad token", "GET", with(nginx("GET", "/projects/42"), "Authorization", "Bearer not.a.jwt"), 401, "invalid_token", `Bearer error="invalid_token"`, ""},
		{"both families", "GET", with(nginx("GET", "/projects/42"), "X-Forwarded-Uri", "/me"), 400, "", "", "X-Original-URI"},
		{"no route headers", "GET", map[string]string{"Authorization": reader}, 400, "", "", "X-Forwarded-Uri"},
		{"no method", "GET", with(nginx("GET", "/projects/42"), "X-Original-Method", ""), 400, "", "", "X-Original-Method"},
		{"dot segment", "GET", nginx("GET", "/me/../projects/42"), 400, "", "", "X-Original-URI"},
		{"encoded dot segment", "GET", nginx("GET", "/me/%2e%2e/projects/42"), 400, "", "", "X-Original-URI"},
		{"encoded slash", "GET", nginx("GET", "/projects/1%2F2"), 400, "", "", "X-Original-URI"},
		{"relative uri", "GET", nginx("GET", "projects/42"), 400, "", "", "X-Original-URI"},
		{"bad method", "GET", nginx("G T", "/projects/42"), 400, "", "", "X-Original-Method"},
		{"uri over 4 KiB (a long query)", "GET", nginx("GET", "/projects/42?q="+strings.Repeat("a", 4100)), 400, "", "", "X-Original-URI"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(log.all())
			got := forward(t, url, tc.method, tc.h)
			if got.status != tc.status {
				t.Fatalf("status %d, want %d: %+v", got.status, tc.status, got.body)
			}
			id := got.header.Get("X-Scopegate-Decision-Id")
			if tc.status == 400 {
				if got.body.Error == nil || got.body.Error.Field != tc.field {
					t.Fatalf("error %+v, want field %s", got.body.Error, tc.field)
				}
				id = got.body.DecisionID
			} else {
				if got.body.Reason != tc.reason || got.header.Get("X-Scopegate-Reason") != tc.reason {
					t.Fatalf("reason %q (header %q), want %s", got.body.Reason, got.header.Get("X-Scopegate-Reason"), tc.reason)
				}
				if got.body.DecisionID != id || id == "" {
					t.Errorf("decision id %q in the body, %q in the header", got.body.DecisionID, id)
				}
			}
			if ch := got.header.Get("WWW-Authenticate"); !strings.HasPrefix(ch, tc.challenge) || (tc.challenge == "") != (ch == "") {
				t.Errorf("WWW-Authenticate %q, want %q", ch, tc.challenge)
			}
			if tc.status == 403 && got.body.Remedy == "" {
				t.Errorf("a deny without a remedy: %+v", got.body)
			}
			if tc.status == 401 && got.body.Remedy == "" {
				t.Errorf("a 401 without a remedy: %+v", got.body)
			}
			if tc.status == 200 {
				for k, want := range map[string]string{"X-Scopegate-Subject": "user-7", "X-Scopegate-Client-Id": "app-1", "X-Scopegate-Scopes": "project:read"} {
					if v := got.header.Get(k); v != want {
						t.Errorf("%s: %q, want %q", k, v, want)
					}
				}
			} else if got.header.Get("X-Scopegate-Subject") != "" {
				t.Errorf("a deny names the subject for the upstream")
			}
			evs := log.all()
			if len(evs) != before+1 || evs[len(evs)-1].DecisionID != id || evs[len(evs)-1].Allow != (tc.status == 200) {
				t.Errorf("not logged as decision %s: %d new records", id, len(evs)-before)
			}
		})
	}
}

// TestForwardAuthRepeatedHeaders: a forwarded header or Authorization
// given twice is refused: which one counts would be a guess.
func TestForwardAuthRepeatedHeaders(t *testing.T) {
	is := testpki.NewIssuer(t)
	url := forwardAuthServer(t, is, nil, nil)
	bearer := "Bearer " + userToken(t, is, "u", "project:read")
	for field, h := range map[string]http.Header{
		"Authorization":      {"X-Original-Method": {"GET"}, "X-Original-Uri": {"/projects/1"}, "Authorization": {bearer, bearer}},
		"X-Original-URI":     {"X-Original-Method": {"GET"}, "X-Original-Uri": {"/projects/1", "/me"}, "Authorization": {bearer}},
		"X-Forwarded-Method": {"X-Forwarded-Method": {"GET", "POST"}, "X-Forwarded-Uri": {"/projects/1"}, "Authorization": {bearer}},
	} {
		req, _ := http.NewRequest("GET", url+"/v1/forward-auth", nil)
		req.Header = h
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var d decideResponse
		_ = json.NewDecoder(resp.Body).Decode(&d)
		resp.Body.Close()
		if resp.StatusCode != 400 || d.Error == nil || d.Error.Field != field {
			t.Errorf("%s twice: %d %+v", field, resp.StatusCode, d.Error)
		}
	}
}

// TestForwardAuthUpstreamHeadersAreSafe: claims pass to the upstream
// percent-encoded, so a subject cannot end its header or add another.
func TestForwardAuthUpstreamHeadersAreSafe(t *testing.T) {
	is := testpki.NewIssuer(t)
	url := forwardAuthServer(t, is, nil, nil)
	tok := userToken(t, is, "evil\r\nX-Admin: 1 100%", "project:read")
	got := forward(t, url, "GET", map[string]string{"X-Forwarded-Method": "GET", "X-Forwarded-Uri": "/projects/1", "Authorization": "Bearer " + tok})
	if got.status != 200 {
		t.Fatalf("status %d: %+v", got.status, got.body)
	}
	if v := got.header.Get("X-Scopegate-Subject"); v != "evil%0D%0AX-Admin: 1 100%25" || got.header.Get("X-Admin") != "" {
		t.Errorf("subject header %q, X-Admin %q", v, got.header.Get("X-Admin"))
	}
}

// TestForwardAuthWithoutVerifier: a server that verifies no tokens cannot
// let a forwarded request through: 503 token_unavailable.
func TestForwardAuthWithoutVerifier(t *testing.T) {
	url := newTestServer(t, server.New(repoEngine(t), server.Options{}))
	got := forward(t, url, "GET", map[string]string{"X-Forwarded-Method": "GET", "X-Forwarded-Uri": "/projects/1", "Authorization": "Bearer abc.def.ghi"})
	if got.status != 503 || got.body.Reason != "token_unavailable" || got.body.Allow {
		t.Fatalf("%d %+v", got.status, got.body)
	}
}

// TestForwardAuthGatewayCredential: with caller auth on, the gateway
// authenticates with X-Scopegate-Authorization (its Authorization is the
// end user's), and the user's Authorization never vouches for the gateway.
func TestForwardAuthGatewayCredential(t *testing.T) {
	dir := t.TempDir()
	const gw = "gateway-secret-0123456789"
	tokens := filepath.Join(dir, "tokens")
	if err := os.WriteFile(tokens, []byte("nginx "+gw+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := auth.New(auth.Options{TokenFile: tokens})
	if err != nil {
		t.Fatal(err)
	}
	is := testpki.NewIssuer(t)
	log := &recordingLog{}
	url := forwardAuthServer(t, is, log, a)
	user := "Bearer " + userToken(t, is, "u", "project:read")
	route := func(h map[string]string) map[string]string {
		h["X-Original-Method"], h["X-Original-URI"] = "GET", "/projects/9"
		return h
	}
	got := forward(t, url, "GET", route(map[string]string{"Authorization": user, "X-Scopegate-Authorization": "Bearer " + gw}))
	if got.status != 200 || got.body.Reason != "allowed" {
		t.Fatalf("gateway with its credential: %d %+v", got.status, got.body)
	}
	if evs := log.all(); len(evs) != 1 || evs[0].Caller != "token:nginx" {
		t.Errorf("record's caller: %+v", evs)
	}
	for name, h := range map[string]map[string]string{
		"no gateway credential":          route(map[string]string{"Authorization": user}),
		"gateway token as Authorization": route(map[string]string{"Authorization": "Bearer " + gw}),
		"wrong gateway token":            route(map[string]string{"Authorization": user, "X-Scopegate-Authorization": "Bearer nope-nope-nope-nope"}),
	} {
		got := forward(t, url, "GET", h)
		if got.status != 401 || got.body.Error == nil || !strings.Contains(got.body.Error.Message, "X-Scopegate-Authorization") {
			t.Errorf("%s: %d %+v", name, got.status, got.body.Error)
		}
		if ch := got.header.Get("WWW-Authenticate"); ch != "" {
			t.Errorf("%s: challenges the end user for the gateway's credential: %q", name, ch)
		}
	}
}

// TestForwardAuthBehindBrowserHeaders: with auth off, a forwarded request
// keeps the end user's Host and Origin (Caddy passes them on) and is still
// answered; without the forwarded headers the browser guard applies.
func TestForwardAuthBehindBrowserHeaders(t *testing.T) {
	is := testpki.NewIssuer(t)
	url := forwardAuthServer(t, is, nil, nil)
	h := map[string]string{"Host": "shop.example", "Origin": "https://shop.example", "Sec-Fetch-Site": "cross-site",
		"X-Forwarded-Method": "GET", "X-Forwarded-Uri": "/projects/1", "Authorization": "Bearer " + userToken(t, is, "u", "project:read")}
	req, _ := http.NewRequest("GET", url+"/v1/forward-auth", nil)
	for k, v := range h {
		req.Header.Set(k, v)
	}
	req.Host = h["Host"]
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("forwarded: %d", resp.StatusCode)
	}
	req.Header.Del("X-Forwarded-Method")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Errorf("not forwarded, foreign host: %d", resp.StatusCode)
	}
}

// TestForwardAuthEnvoyHTTP: Envoy's HTTP ext_authz sends the original
// method to path_prefix + the original path; the route is read from there,
// and forwarded route headers next to it are refused.
func TestForwardAuthEnvoyHTTP(t *testing.T) {
	is := testpki.NewIssuer(t)
	log := &recordingLog{}
	url := forwardAuthServer(t, is, log, nil)
	bearer := "Bearer " + userToken(t, is, "user-7", "project:read")
	send := func(method, path string, h map[string]string) *http.Response {
		req, _ := http.NewRequest(method, url+path, nil)
		for k, v := range h {
			req.Header.Set(k, v)
		}
		client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	for _, tc := range []struct {
		method, path string
		h            map[string]string
		status       int
		reason       string
	}{
		{"GET", "/v1/forward-auth/projects/42?page=1", map[string]string{"Authorization": bearer}, 200, "allowed"},
		{"POST", "/v1/forward-auth/projects/42/launch", map[string]string{"Authorization": bearer}, 403, "missing_scope"},
		{"DELETE", "/v1/forward-auth/projects/42", nil, 401, "missing_token"},
		{"GET", "/v1/forward-auth/projects/42", map[string]string{"Authorization": bearer, "X-Forwarded-Uri": "/me"}, 400, ""},
		{"GET", "/v1/forward-auth/projects/a%2Fb", map[string]string{"Authorization": bearer}, 400, ""},
	} {
		resp := send(tc.method, tc.path, tc.h)
		if resp.StatusCode != tc.status || resp.Header.Get("X-Scopegate-Reason") != tc.reason {
			t.Errorf("%s %s: %d %q, want %d %q", tc.method, tc.path, resp.StatusCode, resp.Header.Get("X-Scopegate-Reason"), tc.status, tc.reason)
		}
	}
	// A dot segment never reaches a decision: the router redirects it,
	// which Envoy counts as a deny.
	if resp := send("GET", "/v1/forward-auth/me/../projects/42", map[string]string{"Authorization": bearer}); resp.StatusCode == 200 {
		t.Errorf("dot segment: %d", resp.StatusCode)
	}
	if n := len(log.all()); n != 5 {
		t.Errorf("%d records, want 5", n)
	}
}
