// Package token verifies JWT access tokens as RFC 9068 section 4 says a
// resource server must: the typ header, the issuer, the audience, the
// signature with the issuer's key named by kid (asymmetric algorithms
// only), and the time claims within a leeway. It returns the claims a
// decision needs: the granted scopes, the subject, the client. Signatures
// are checked by github.com/lestrrat-go/jwx/v3 (already in the module
// graph through OPA), never by code of ours.
package token

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"

	"github.com/scopegate/scopegate/internal/jwks"
)

// MaxBytes bounds a token: larger ones are refused before any parsing.
const MaxBytes = 8 << 10

// allowedAlgs are the signature algorithms accepted: asymmetric only, so a
// public key can never serve as an HMAC secret, and never "none".
var allowedAlgs = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// DefaultTyps are the typ headers RFC 9068 allows. Many identity providers
// (Keycloak, Entra ID, older Auth0 and Okta setups) write "JWT" on access
// tokens; an operator may accept it too (Config.Typs).
var DefaultTyps = []string{"at+jwt", "application/at+jwt"}

// KeySource finds the issuer's key named kid: a JWKS file (StaticKeys) or
// URL (jwks.Remote). An error wrapping jwks.ErrUnavailable means the keys could
// not be had now (token_unavailable); any other, that there is no such key.
type KeySource interface {
	Key(ctx context.Context, kid string) (jwk.Key, error)
}

// ErrUnavailable: the token could not be checked now (the issuer's keys,
// or its introspection endpoint, cannot be reached). A deny, never an
// allow, with reason token_unavailable.
var ErrUnavailable = errors.New("the access token cannot be checked now")

// StaticKeys are keys loaded once, from a JWKS file.
type StaticKeys struct{ Set jwk.Set }

// Key returns the key named kid.
func (s StaticKeys) Key(_ context.Context, kid string) (jwk.Key, error) {
	if k, ok := s.Set.LookupKeyID(kid); ok {
		return k, nil
	}
	return nil, jwks.ErrUnknownKey
}

// Config says which tokens are accepted.
type Config struct {
	Issuer   string
	Audience string
	Keys     KeySource
	Typs     []string      // accepted typ headers, compared case-insensitively; nil: DefaultTyps
	Leeway   time.Duration // allowed clock skew on exp, nbf, iat
	// ScopeClaim names the claim holding the scopes; "" reads scope, else
	// scp (Microsoft Entra).
	ScopeClaim string
	Now        func() time.Time
}

// LoadJWKS reads a JWKS file of public keys. Symmetric (oct) and private
// keys are refused: the issuer's public keys are all a verifier needs.
func LoadJWKS(path string) (StaticKeys, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return StaticKeys{}, fmt.Errorf("token: JWKS: %w", err)
	}
	set, err := jwk.Parse(raw)
	if err != nil {
		return StaticKeys{}, fmt.Errorf("token: JWKS %s: %w", path, err)
	}
	if err := CheckKeys(set); err != nil {
		return StaticKeys{}, fmt.Errorf("token: JWKS %s: %w", path, err)
	}
	return StaticKeys{set}, nil
}

// CheckKeys refuses a set holding a symmetric or a private key.
func CheckKeys(set jwk.Set) error {
	for i := range set.Len() {
		k, _ := set.Key(i)
		if k.KeyType().String() == "oct" {
			return fmt.Errorf("key %d is a symmetric key; only public keys verify access tokens", i)
		}
		if _, err := k.PublicKey(); err != nil {
			return fmt.Errorf("key %d: %w", i, err)
		}
		if isPrivate(k) {
			return fmt.Errorf("key %d is a private key; give the issuer's public keys", i)
		}
	}
	return nil
}

func isPrivate(k jwk.Key) bool {
	for _, f := range []string{"d", "p", "q"} {
		if k.Has(f) {
			return true
		}
	}
	return false
}

// Claims are what a verified token grants.
type Claims struct {
	Issuer   string
	Subject  string
	ClientID string // client_id, else azp
	JTI      string
	Expires  time.Time
	Scopes   []string
	// All holds every claim, for the policy (input.token).
	All map[string]any
}

// Error is a token that is not accepted, and the check it failed.
type Error struct {
	Check  string // malformed, typ, alg, kid, signature, iss, aud, exp, nbf, iat, scope
	Detail string
}

func (e *Error) Error() string { return "invalid token: " + e.Check + ": " + e.Detail }

func fail(check, format string, args ...any) (Claims, error) {
	return Claims{}, &Error{Check: check, Detail: fmt.Sprintf(format, args...)}
}

// header is the JOSE header fields checked here.
type header struct {
	Alg  string   `json:"alg"`
	Kid  string   `json:"kid"`
	Typ  string   `json:"typ"`
	Crit []string `json:"crit"`
}

func (c *Config) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// Verify checks raw and returns its claims, or an *Error naming the check
// that failed, or an error wrapping ErrUnavailable when the issuer's keys
// cannot be had now.
func Verify(ctx context.Context, c *Config, raw string) (Claims, error) {
	if len(raw) > MaxBytes {
		return fail("malformed", "token is over %d bytes", MaxBytes)
	}
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return fail("malformed", "not a compact JWS (header.payload.signature)")
	}
	hb, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return fail("malformed", "header is not base64url")
	}
	var h header
	if err := json.Unmarshal(hb, &h); err != nil {
		return fail("malformed", "header is not a JSON object")
	}
	typs := c.Typs
	if typs == nil {
		typs = DefaultTyps
	}
	if !slices.ContainsFunc(typs, func(t string) bool { return strings.EqualFold(t, h.Typ) }) {
		return fail("typ", "typ %q is not an access token's (want %s)", h.Typ, strings.Join(typs, " or "))
	}
	if !slices.Contains(allowedAlgs, h.Alg) {
		return fail("alg", "algorithm %q is not allowed (asymmetric only: %s)", h.Alg, strings.Join(allowedAlgs, ", "))
	}
	if len(h.Crit) > 0 {
		return fail("malformed", "critical header parameters %v are not understood", h.Crit)
	}
	alg, ok := jwa.LookupSignatureAlgorithm(h.Alg)
	if !ok {
		return fail("alg", "algorithm %q is not supported", h.Alg)
	}
	if h.Kid == "" {
		return fail("kid", "no kid: the key cannot be chosen")
	}
	key, err := c.Keys.Key(ctx, h.Kid)
	switch {
	case errors.Is(err, jwks.ErrUnavailable):
		return Claims{}, fmt.Errorf("%w: %v", ErrUnavailable, err)
	case err != nil:
		return fail("kid", "no key %q in the issuer's JWKS", h.Kid)
	}
	if ka, ok := key.Algorithm(); ok && ka.String() != h.Alg {
		return fail("alg", "key %q is for %s, the token says %s", h.Kid, ka, h.Alg)
	}
	payload, err := jws.Verify([]byte(raw), jws.WithKey(alg, key))
	if err != nil {
		return fail("signature", "does not verify with key %q", h.Kid)
	}
	return c.claims(payload)
}

// claims checks the claims RFC 9068 section 4 names and reads the scopes.
func (c *Config) claims(payload []byte) (Claims, error) {
	var all map[string]any
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	if err := dec.Decode(&all); err != nil {
		return fail("malformed", "claims are not a JSON object")
	}
	str := func(k string) string { s, _ := all[k].(string); return s }
	out := Claims{Issuer: str("iss"), Subject: str("sub"), ClientID: str("client_id"), JTI: str("jti"), All: all}
	if out.ClientID == "" {
		out.ClientID = str("azp")
	}
	if out.Issuer != c.Issuer {
		return fail("iss", "issuer %q is not %q", out.Issuer, c.Issuer)
	}
	if err := checkAudience(all["aud"], c.Audience); err != nil {
		return Claims{}, err
	}
	t := c.now()
	exp, ok := numericDate(all["exp"])
	if !ok {
		return fail("exp", "no exp")
	}
	if !t.Before(exp.Add(c.Leeway)) {
		return fail("exp", "expired at %s", exp.UTC().Format(time.RFC3339))
	}
	out.Expires = exp
	if nbf, ok := numericDate(all["nbf"]); ok && t.Add(c.Leeway).Before(nbf) {
		return fail("nbf", "not valid before %s", nbf.UTC().Format(time.RFC3339))
	}
	if iat, ok := numericDate(all["iat"]); ok && t.Add(c.Leeway).Before(iat) {
		return fail("iat", "issued in the future, at %s", iat.UTC().Format(time.RFC3339))
	}
	scopes, err := scopesOf(all, c.ScopeClaim)
	if err != nil {
		return fail("scope", "%v", err)
	}
	out.Scopes = scopes
	return out, nil
}

// checkAudience accepts aud (a string, or an array of them) only if it is
// or contains want.
func checkAudience(aud any, want string) error {
	switch aud := aud.(type) {
	case string:
		if aud != want {
			return &Error{Check: "aud", Detail: fmt.Sprintf("audience %q is not %q", aud, want)}
		}
	case []any:
		if !slices.ContainsFunc(aud, func(a any) bool { return a == want }) {
			return &Error{Check: "aud", Detail: fmt.Sprintf("audience %v does not contain %q", aud, want)}
		}
	case nil:
		return &Error{Check: "aud", Detail: "no audience"}
	default:
		return &Error{Check: "aud", Detail: "audience is neither a string nor an array"}
	}
	return nil
}

// scopesOf reads the claim named claim or, if claim is "", scope
// (space-separated) or scp (an array, or a space-separated string as
// Microsoft Entra writes it).
func scopesOf(all map[string]any, claim string) ([]string, error) {
	var v any
	var ok bool
	if claim != "" {
		v, ok = all[claim]
	} else if v, ok = all["scope"]; !ok {
		v, ok = all["scp"]
	}
	if !ok {
		return []string{}, nil
	}
	switch s := v.(type) {
	case string:
		return strings.Fields(s), nil
	case []any:
		out := make([]string, 0, len(s))
		for _, x := range s {
			str, ok := x.(string)
			if !ok {
				return nil, errors.New("the scope claim holds a value that is not a string")
			}
			out = append(out, str)
		}
		return out, nil
	}
	return nil, errors.New("scope is neither a string nor an array of strings")
}

// numericDate reads a JWT NumericDate (seconds since the epoch).
func numericDate(v any) (time.Time, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return time.Time{}, false
	}
	f, err := n.Float64()
	if err != nil {
		return time.Time{}, false
	}
	sec := int64(f)
	return time.Unix(sec, int64((f-float64(sec))*1e9)), true
}
