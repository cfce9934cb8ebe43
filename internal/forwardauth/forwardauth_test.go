package forwardauth

import (
	"net/http"
	"strings"
	"testing"

	"github.com/scopegate/scopegate/internal/engine"
	"github.com/scopegate/scopegate/internal/request"
)

func TestHeaderValue(t *testing.T) {
	for in, want := range map[string]string{
		"user-7":              "user-7",
		"a b":                 "a b",
		"é":                   "%C3%A9",
		"50%":                 "50%25",
		"x\r\nSet-Cookie: a":  "x%0D%0ASet-Cookie: a",
		"tab\there\x7f":       "tab%09here%7F",
		"project:read user:r": "project:read user:r",
	} {
		if got := HeaderValue(in); got != want {
			t.Errorf("HeaderValue(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestStatus(t *testing.T) {
	for reason, want := range map[string]int{
		engine.ReasonAllowed: 200, engine.ReasonMissingScope: 403, engine.ReasonNoScopes: 403,
		engine.ReasonUnknownAction: 403, engine.ReasonPolicyError: 403, "log_unavailable": 403,
		engine.ReasonInvalidToken: 401, engine.ReasonMissingToken: 401, engine.ReasonTokenUnavailable: 503,
	} {
		d := engine.Decision{Allow: reason == engine.ReasonAllowed, Reason: reason}
		if got := Status(&d); got != want {
			t.Errorf("%s: %d, want %d", reason, got, want)
		}
	}
}

// FuzzRead: any headers are either refused naming a header, or read into a
// route /v1/decide would accept, with no encoded slash decoded into it.
func FuzzRead(f *testing.F) {
	f.Add("GET", "/projects/42?x=1", "Bearer a.b.c", false)
	f.Add("POST", "/me/%2e%2e/x", "", true)
	f.Add("get", "/a%2Fb", "Basic x", false)
	f.Add("GET", "/a%zz", "bearer  tok ", true)
	f.Fuzz(func(t *testing.T, method, uri, authz string, nginx bool) {
		// An encoded slash may be in the query, which is not read; in the
		// path it must be refused, never decoded into a segment.
		path, _, _ := strings.Cut(uri, "?")
		encodedSlash := strings.Contains(strings.ToLower(path), "%2f")
		h := http.Header{}
		m, u := "X-Forwarded-Method", "X-Forwarded-Uri"
		if nginx {
			m, u = "X-Original-Method", "X-Original-URI"
		}
		h.Set(m, method)
		h.Set(u, uri)
		if authz != "" {
			h.Set("Authorization", authz)
		}
		if p, e := ReadPrefixed(method, uri, http.Header{"Authorization": {authz}}); e == nil {
			if e := request.CheckRoute(p.Method, p.Path); e != nil || encodedSlash {
				t.Fatalf("prefixed %q %q read into %q: %v", method, uri, p.Path, e)
			}
		} else if e.Field == "" {
			t.Fatalf("prefixed refusal without a field: %+v", e)
		}
		req, e := Read(h)
		if e != nil {
			if e.Field == "" || e.Code != request.CodeInvalidInput {
				t.Fatalf("refusal without a field: %+v", e)
			}
			return
		}
		if e := request.CheckRoute(req.Method, req.Path); e != nil {
			t.Fatalf("read %q %q into a route /v1/decide refuses: %v", method, uri, e)
		}
		if encodedSlash {
			t.Fatalf("decoded an encoded slash: %q", uri)
		}
		if (req.Token == "") == (req.NoToken == "") {
			t.Fatalf("token %q and no-token %q", req.Token, req.NoToken)
		}
	})
}
