package token

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
)

var now = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)

// issuer is a test identity provider: keys made at test time, a JWKS file.
type issuer struct {
	rsa  *rsa.PrivateKey
	ec   *ecdsa.PrivateKey
	ed   ed25519.PrivateKey
	jwks string
	cfg  *Config
}

func newIssuer(t testing.TB) *issuer {
	t.Helper()
	is := &issuer{}
	var err error
	if is.rsa, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		t.Fatal(err)
	}
	if is.ec, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		t.Fatal(err)
	}
	if _, is.ed, err = ed25519.GenerateKey(rand.Reader); err != nil {
		t.Fatal(err)
	}
	set := jwk.NewSet()
	for kid, pub := range map[string]any{"rsa-1": &is.rsa.PublicKey, "ec-1": &is.ec.PublicKey, "ed-1": is.ed.Public()} {
		k, err := jwk.Import(pub)
		if err != nil {
			t.Fatal(err)
		}
		_ = k.Set(jwk.KeyIDKey, kid)
		_ = set.AddKey(k)
	}
	raw, _ := json.Marshal(set)
	is.jwks = filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(is.jwks, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	keys, err := LoadJWKS(is.jwks)
	if err != nil {
		t.Fatal(err)
	}
	is.cfg = &Config{Issuer: "https://id.example.com", Audience: "https://api.example.com", Keys: keys, Leeway: time.Minute,
		Now: func() time.Time { return now }}
	return is
}

// claims are a valid token's claims, edited by the case.
func claims(edit func(map[string]any)) map[string]any {
	c := map[string]any{
		"iss": "https://id.example.com", "aud": "https://api.example.com", "sub": "user-7", "client_id": "translator-bot",
		"jti": "j-1", "iat": now.Add(-time.Minute).Unix(), "exp": now.Add(time.Hour).Unix(), "scope": "openid user:read project:write",
	}
	if edit != nil {
		edit(c)
	}
	return c
}

// sign makes a compact JWS over c with the key for alg and the header.
func (is *issuer) sign(t testing.TB, alg, kid, typ string, c map[string]any) string {
	t.Helper()
	payload, _ := json.Marshal(c)
	h := jws.NewHeaders()
	if kid != "" {
		_ = h.Set(jws.KeyIDKey, kid)
	}
	if typ != "" {
		_ = h.Set(jws.TypeKey, typ)
	}
	var key any = is.rsa
	switch alg {
	case "ES256":
		key = is.ec
	case "EdDSA":
		key = is.ed
	}
	a, _ := jwa.LookupSignatureAlgorithm(alg)
	tok, err := jws.Sign(payload, jws.WithKey(a, key, jws.WithProtectedHeaders(h)))
	if err != nil {
		t.Fatal(err)
	}
	return string(tok)
}

func TestVerify(t *testing.T) {
	is := newIssuer(t)
	other := newIssuer(t) // same kids, other keys: a forged signature
	pubDER, _ := x509.MarshalPKIXPublicKey(&is.rsa.PublicKey)
	b64 := base64.RawURLEncoding.EncodeToString
	body := b64([]byte(`{"iss":"https://id.example.com","aud":"https://api.example.com","exp":` + "9999999999" + `,"scope":"user:read"}`))
	hs256 := func() string { // HS256 with the RSA public key as the secret
		a := jwa.HS256()
		h := jws.NewHeaders()
		_ = h.Set(jws.KeyIDKey, "rsa-1")
		_ = h.Set(jws.TypeKey, "at+jwt")
		tok, err := jws.Sign([]byte(`{"iss":"https://id.example.com","aud":"https://api.example.com","exp":9999999999}`), jws.WithKey(a, pubDER, jws.WithProtectedHeaders(h)))
		if err != nil {
			t.Fatal(err)
		}
		return string(tok)
	}()
	for _, tc := range []struct {
		name, token, check string
	}{
		{"RS256", is.sign(t, "RS256", "rsa-1", "at+jwt", claims(nil)), ""},
		{"PS256", is.sign(t, "PS256", "rsa-1", "at+jwt", claims(nil)), ""},
		{"ES256", is.sign(t, "ES256", "ec-1", "application/at+jwt", claims(nil)), ""},
		{"EdDSA", is.sign(t, "EdDSA", "ed-1", "AT+JWT", claims(nil)), ""},
		{"aud array", is.sign(t, "RS256", "rsa-1", "at+jwt", claims(func(c map[string]any) { c["aud"] = []string{"x", "https://api.example.com"} })), ""},
		{"within leeway", is.sign(t, "RS256", "rsa-1", "at+jwt", claims(func(c map[string]any) { c["exp"] = now.Add(-30 * time.Second).Unix() })), ""},
		{"expired", is.sign(t, "RS256", "rsa-1", "at+jwt", claims(func(c map[string]any) { c["exp"] = now.Add(-2 * time.Minute).Unix() })), "exp"},
		{"no exp", is.sign(t, "RS256", "rsa-1", "at+jwt", claims(func(c map[string]any) { delete(c, "exp") })), "exp"},
		{"not yet valid", is.sign(t, "RS256", "rsa-1", "at+jwt", claims(func(c map[string]any) { c["nbf"] = now.Add(5 * time.Minute).Unix() })), "nbf"},
		{"issued in the future", is.sign(t, "RS256", "rsa-1", "at+jwt", claims(func(c map[string]any) { c["iat"] = now.Add(5 * time.Minute).Unix() })), "iat"},
		{"wrong issuer", is.sign(t, "RS256", "rsa-1", "at+jwt", claims(func(c map[string]any) { c["iss"] = "https://id.example.com/" })), "iss"},
		{"wrong audience", is.sign(t, "RS256", "rsa-1", "at+jwt", claims(func(c map[string]any) { c["aud"] = "https://other" })), "aud"},
		{"bad signature", other.sign(t, "RS256", "rsa-1", "at+jwt", claims(nil)), "signature"},
		{"unknown key", is.sign(t, "RS256", "rsa-9", "at+jwt", claims(nil)), "kid"},
		{"no kid", is.sign(t, "RS256", "", "at+jwt", claims(nil)), "kid"},
		{"typ JWT", is.sign(t, "RS256", "rsa-1", "JWT", claims(nil)), "typ"},
		{"no typ", is.sign(t, "RS256", "rsa-1", "", claims(nil)), "typ"},
		{"alg none", b64([]byte(`{"alg":"none","typ":"at+jwt","kid":"rsa-1"}`)) + "." + body + ".", "alg"},
		{"HS256 with the public key as secret", hs256, "alg"},
		{"key of another algorithm", is.sign(t, "RS256", "ec-1", "at+jwt", claims(nil)), "signature"},
		{"malformed", "not.a.jwt", "malformed"},
		{"two parts", "abc.def", "malformed"},
		{"oversized", strings.Repeat("a", MaxBytes+1), "malformed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Verify(context.Background(), is.cfg, tc.token)
			if tc.check == "" {
				if err != nil {
					t.Fatal(err)
				}
				if c.Subject != "user-7" || c.ClientID != "translator-bot" || !slices.Equal(c.Scopes, []string{"openid", "user:read", "project:write"}) {
					t.Fatalf("claims %+v", c)
				}
				return
			}
			var te *Error
			if !errors.As(err, &te) || te.Check != tc.check {
				t.Fatalf("want a %s failure, got %v", tc.check, err)
			}
		})
	}
}

// TestTypJWTWithTheFlag: typ JWT, refused by default, accepted when the
// operator lists it; Entra's scp string and an scp array are read; azp
// stands in for client_id.
func TestTypJWTWithTheFlag(t *testing.T) {
	is := newIssuer(t)
	is.cfg.Typs = []string{"at+jwt", "JWT"}
	for _, tc := range []struct {
		edit func(map[string]any)
		want []string
	}{
		{func(c map[string]any) { delete(c, "scope"); c["scp"] = "user.read project:write" }, []string{"user.read", "project:write"}},
		{func(c map[string]any) { delete(c, "scope"); c["scp"] = []string{"a", "b"} }, []string{"a", "b"}},
		{func(c map[string]any) { delete(c, "client_id"); c["azp"] = "translator-bot" }, []string{"openid", "user:read", "project:write"}},
	} {
		c, err := Verify(context.Background(), is.cfg, is.sign(t, "RS256", "rsa-1", "JWT", claims(tc.edit)))
		if err != nil || !slices.Equal(c.Scopes, tc.want) || c.ClientID != "translator-bot" {
			t.Fatalf("%+v %v", c, err)
		}
	}
}

// TestLoadJWKSRefusesSecretKeys: a JWKS holding a symmetric or a private
// key is refused.
func TestLoadJWKSRefusesSecretKeys(t *testing.T) {
	dir := t.TempDir()
	oct := filepath.Join(dir, "oct.json")
	os.WriteFile(oct, []byte(`{"keys":[{"kty":"oct","kid":"h","k":"c2VjcmV0"}]}`), 0o644)
	if _, err := LoadJWKS(oct); err == nil || !strings.Contains(err.Error(), "symmetric") {
		t.Errorf("oct key: %v", err)
	}
	k, _ := rsa.GenerateKey(rand.Reader, 2048)
	priv, _ := jwk.Import(k)
	set := jwk.NewSet()
	_ = set.AddKey(priv)
	raw, _ := json.Marshal(set)
	p := filepath.Join(dir, "priv.json")
	os.WriteFile(p, raw, 0o644)
	if _, err := LoadJWKS(p); err == nil || !strings.Contains(err.Error(), "private") {
		t.Errorf("private key: %v", err)
	}
}

// FuzzVerify: whatever the bytes, Verify returns claims or an *Error, and
// never panics.
func FuzzVerify(f *testing.F) {
	is := newIssuer(f)
	f.Add(is.sign(f, "RS256", "rsa-1", "at+jwt", claims(nil)))
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Add("a.b.c")
	f.Fuzz(func(t *testing.T, raw string) {
		_, err := Verify(context.Background(), is.cfg, raw)
		var te *Error
		if err != nil && !errors.As(err, &te) {
			t.Fatalf("error %v is not a token.Error", err)
		}
	})
}
