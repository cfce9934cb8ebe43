package token_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scopegate/scopegate/internal/introspect"
	"github.com/scopegate/scopegate/internal/testpki"
	"github.com/scopegate/scopegate/internal/token"
)

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "tokens.yaml")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestTwoIssuers: each issuer's tokens are checked against its own
// audience and keys, the issuer chosen by iss; a token claiming one
// issuer but signed by the other's key is refused, not tried with both.
func TestTwoIssuers(t *testing.T) {
	a, b := testpki.NewIssuerKid(t, "a-1"), testpki.NewIssuerKid(t, "b-1")
	cfgPath := writeConfig(t, `issuers:
  - issuer: https://a.example.com
    audience: https://api.example.com
    jwks: `+a.JWKS+`
  - issuer: https://login.b.example.com/v2.0
    audience: api://scopegate
    jwks: `+b.JWKS+`
    typ: [JWT]
    leeway: 5s
    scope_claim: scp
`)
	issuers, err := token.LoadFile(cfgPath, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	v, err := token.NewVerifier(issuers, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	exp := time.Now().Add(time.Hour).Unix()
	ctx := context.Background()
	for name, tc := range map[string]struct {
		tok    string
		check  string // "" for accepted
		scopes string
	}{
		"a's token": {a.Token(t, "at+jwt", map[string]any{"iss": "https://a.example.com", "aud": "https://api.example.com", "sub": "u", "exp": exp, "scope": "user:read"}), "", "user:read"},
		"b's token, scp": {b.Token(t, "JWT", map[string]any{"iss": "https://login.b.example.com/v2.0", "aud": "api://scopegate", "sub": "u", "exp": exp,
			"scp": "project:read", "scope": "ignored"}), "", "project:read"},
		"a's token for b's audience": {a.Token(t, "at+jwt", map[string]any{"iss": "https://a.example.com", "aud": "api://scopegate", "sub": "u", "exp": exp}), "aud", ""},
		"b's typ at a":               {a.Token(t, "JWT", map[string]any{"iss": "https://a.example.com", "aud": "https://api.example.com", "sub": "u", "exp": exp}), "typ", ""},
		"claims b, signed by a": {a.Token(t, "JWT", map[string]any{"iss": "https://login.b.example.com/v2.0", "aud": "api://scopegate", "sub": "u", "exp": exp}),
			"kid", ""},
		"unknown issuer":           {a.Token(t, "at+jwt", map[string]any{"iss": "https://evil.example.com", "aud": "https://api.example.com", "sub": "u", "exp": exp}), "iss", ""},
		"opaque, no introspection": {"opaque-token-abcdef", "malformed", ""},
	} {
		c, err := v.Verify(ctx, tc.tok)
		var te *token.Error
		switch {
		case tc.check == "" && err != nil:
			t.Errorf("%s: %v", name, err)
		case tc.check == "" && strings.Join(c.Scopes, " ") != tc.scopes:
			t.Errorf("%s: scopes %v", name, c.Scopes)
		case tc.check != "" && (!errors.As(err, &te) || te.Check != tc.check):
			t.Errorf("%s: %v, want check %s", name, err, tc.check)
		}
	}
}

// TestTokenConfigErrors: every problem of a config file, each with its
// file and line.
func TestTokenConfigErrors(t *testing.T) {
	a := testpki.NewIssuerKid(t, "a-1")
	p := writeConfig(t, `issuers:
  - issuer: https://a.example.com
    audience: https://api.example.com
    jwks: `+a.JWKS+`
  - issuer: https://a.example.com
    audience: x
    jwks: `+a.JWKS+`
  - audience: y
    jwks: http://keys.example.com/jwks
    leeway: soon
`)
	_, err := token.LoadFile(p, time.Second)
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{
		p + ":5: issuers[1]: issuer https://a.example.com is already configured at line 2",
		p + ":8: issuers[2]: issuer is missing",
		p + `:8: issuers[2]: leeway "soon"`,
		p + ":8: issuers[2]: jwks: JWKS URL http://keys.example.com/jwks: http is allowed only on loopback",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
	if _, err := token.LoadFile(writeConfig(t, "issuers:\n  - issuer: x\n    audiance: y\n"), time.Second); err == nil || !strings.Contains(err.Error(), "audiance") {
		t.Errorf("unknown key: %v", err)
	}
}

// fakeIntrospector answers from a map.
type fakeIntrospector map[string]introspect.Result

func (f fakeIntrospector) Introspect(_ context.Context, tok string) (introspect.Result, error) {
	if r, ok := f[tok]; ok {
		return r, nil
	}
	return introspect.Result{}, introspect.ErrUnavailable
}

// TestOpaqueAndJWT: with both configured, JWTs are verified locally and
// other tokens introspected; an unreachable endpoint is ErrUnavailable; an
// answer for another audience is refused.
func TestOpaqueAndJWT(t *testing.T) {
	a := testpki.NewIssuerKid(t, "a-1")
	keys, err := token.LoadJWKS(a.JWKS)
	if err != nil {
		t.Fatal(err)
	}
	in := fakeIntrospector{
		"opaque-1":   {Active: true, Claims: map[string]any{"active": true, "scope": "user:read", "sub": "u9", "client_id": "c9"}},
		"opaque-aud": {Active: true, Claims: map[string]any{"active": true, "aud": "other"}},
		"opaque-off": {Active: false},
	}
	v, err := token.NewVerifier([]*token.Config{{Issuer: "https://a.example.com", Audience: "api", Keys: keys}}, in, "api")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if c, err := v.Verify(ctx, "opaque-1"); err != nil || c.Subject != "u9" || c.ClientID != "c9" || strings.Join(c.Scopes, " ") != "user:read" || c.All["active"] != nil {
		t.Errorf("opaque: %+v %v", c, err)
	}
	var te *token.Error
	if _, err := v.Verify(ctx, "opaque-off"); !errors.As(err, &te) || te.Check != "active" {
		t.Errorf("inactive: %v", err)
	}
	if _, err := v.Verify(ctx, "opaque-aud"); !errors.As(err, &te) || te.Check != "aud" {
		t.Errorf("other audience: %v", err)
	}
	if _, err := v.Verify(ctx, "opaque-unreachable"); !errors.Is(err, token.ErrUnavailable) {
		t.Errorf("unreachable: %v", err)
	}
	jwt := a.Token(t, "at+jwt", map[string]any{"iss": "https://a.example.com", "aud": "api", "sub": "u", "exp": time.Now().Add(time.Hour).Unix()})
	if _, err := v.Verify(ctx, jwt); err != nil {
		t.Errorf("JWT: %v", err)
	}
}
