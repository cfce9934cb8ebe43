package testpki

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
)

// Issuer is a throwaway OAuth authorization server for tests: an RSA key
// (kid "test-1") published in a JWKS file, signing RS256 access tokens.
type Issuer struct {
	key *rsa.PrivateKey
	// JWKS is the path of its JWKS file (public key only).
	JWKS string
	// Kid names its key.
	Kid string
}

// NewIssuer makes an Issuer with its JWKS in a temp dir.
func NewIssuer(t testing.TB) *Issuer {
	t.Helper()
	is, err := NewIssuerIn(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return is
}

// NewIssuerKid is NewIssuer with a key named kid, for key rotations.
func NewIssuerKid(t testing.TB, kid string) *Issuer {
	t.Helper()
	is, err := newIssuer(t.TempDir(), kid)
	if err != nil {
		t.Fatal(err)
	}
	return is
}

// NewIssuerIn makes an Issuer with its JWKS in dir (benchmarks use it
// outside a test).
func NewIssuerIn(dir string) (*Issuer, error) { return newIssuer(dir, "test-1") }

func newIssuer(dir, kid string) (*Issuer, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	pub, err := jwk.Import(&key.PublicKey)
	if err != nil {
		return nil, err
	}
	_ = pub.Set(jwk.KeyIDKey, kid)
	set := jwk.NewSet()
	_ = set.AddKey(pub)
	raw, _ := json.Marshal(set)
	path := filepath.Join(dir, "jwks.json")
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		return nil, err
	}
	return &Issuer{key: key, JWKS: path, Kid: kid}, nil
}

// Token signs claims as an access token with typ (at+jwt for RFC 9068).
func (is *Issuer) Token(t testing.TB, typ string, claims map[string]any) string {
	t.Helper()
	tok, err := is.Sign(typ, claims)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// Sign is Token outside a test.
func (is *Issuer) Sign(typ string, claims map[string]any) (string, error) {
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	h := jws.NewHeaders()
	_ = h.Set(jws.KeyIDKey, is.Kid)
	_ = h.Set(jws.TypeKey, typ)
	tok, err := jws.Sign(payload, jws.WithKey(jwa.RS256(), is.key, jws.WithProtectedHeaders(h)))
	if err != nil {
		return "", err
	}
	return string(tok), nil
}
