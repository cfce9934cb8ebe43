package token

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/scopegate/scopegate/internal/bytecache"
	"github.com/scopegate/scopegate/internal/introspect"
	"github.com/scopegate/scopegate/internal/jwks"
)

// Introspector answers for opaque tokens (introspect.Client).
type Introspector interface {
	Introspect(ctx context.Context, token string) (introspect.Result, error)
}

// Verifier accepts access tokens: a JWT from one of the configured issuers
// is verified locally against that issuer's keys, the issuer chosen by the
// token's iss (never by trying every issuer's keys); any other token is
// asked about at the introspection endpoint (RFC 7662), if there is one.
type Verifier struct {
	byIssuer     map[string]*Config
	introspector Introspector
	// audience, when set, must be among an introspection answer's aud
	// (when it has one).
	audience string
	// verified remembers JWTs that passed every check (see Cache).
	verified *bytecache.Cache[verifiedJWT]
	ttl      time.Duration
}

// verifiedJWT is a JWT that passed every check, good until until, with the
// issuer's keys as they were at generation gen.
type verifiedJWT struct {
	claims Claims
	until  time.Time
	gen    uint64
	issuer *Config
}

// generational is a KeySource whose keys can change (jwks.Remote): a
// token verified under an older set is verified again.
type generational interface{ Generation() uint64 }

// DefaultCacheBytes and DefaultCacheTTL bound the verified-token cache.
const (
	DefaultCacheBytes = 16 << 20
	DefaultCacheTTL   = 5 * time.Minute
)

// Cache makes the verifier remember a JWT that passed every check, keyed
// by its SHA-256, for up to ttl and never past its exp (plus leeway), in
// at most maxBytes: a service's users send the same token many times, and
// an RS256 verification costs more than the rest of a decision. A token
// is verified again once its issuer's key set has been refetched, so a
// key the issuer withdrew stops being trusted. maxBytes <= 0: no cache.
func (v *Verifier) Cache(maxBytes int64, ttl time.Duration) {
	if maxBytes <= 0 || ttl <= 0 {
		v.verified = nil
		return
	}
	v.verified = bytecache.New[verifiedJWT](maxBytes)
	v.ttl = ttl
}

// CacheStats are the verified-token cache's hits, misses and bytes.
func (v *Verifier) CacheStats() (hits, misses uint64, bytes int64) {
	if v.verified == nil {
		return 0, 0, 0
	}
	hits, misses, _ = v.verified.Stats()
	return hits, misses, v.verified.Bytes()
}

// NewVerifier accepts JWTs from issuers (each iss at most once) and, with
// in, opaque tokens; audience is checked against introspection answers
// that carry aud.
func NewVerifier(issuers []*Config, in Introspector, audience string) (*Verifier, error) {
	v := &Verifier{byIssuer: map[string]*Config{}, introspector: in, audience: audience}
	for _, c := range issuers {
		if c.Issuer == "" {
			return nil, errors.New("an issuer without iss")
		}
		if _, dup := v.byIssuer[c.Issuer]; dup {
			return nil, fmt.Errorf("issuer %s is configured twice", c.Issuer)
		}
		v.byIssuer[c.Issuer] = c
	}
	if len(v.byIssuer) == 0 && in == nil {
		return nil, errors.New("no issuer and no introspection endpoint: no token could be accepted")
	}
	return v, nil
}

// Introspector is the introspection endpoint's client, or nil.
func (v *Verifier) Introspector() Introspector { return v.introspector }

// IssuerStatus is what /ready says of an issuer: where its keys come
// from and, for a JWKS URL, until when the cached keys serve and the last
// fetch's error.
type IssuerStatus struct {
	Issuer    string     `json:"issuer"`
	JWKS      string     `json:"jwks"` // "file" or the URL
	KeysUntil *time.Time `json:"keys_until,omitempty"`
	LastError string     `json:"last_error,omitempty"`
}

// Status describes the issuers, and whether opaque tokens are introspected.
func (v *Verifier) Status() map[string]any {
	var issuers []IssuerStatus
	for _, c := range v.Issuers() {
		st := IssuerStatus{Issuer: c.Issuer, JWKS: "file"}
		if r, ok := c.Keys.(*jwks.Remote); ok {
			st.JWKS = r.URL()
			if _, _, exp := r.Stats(); !exp.IsZero() {
				st.KeysUntil = &exp
			}
			if err := r.LastError(); err != nil {
				st.LastError = err.Error()
			}
		}
		issuers = append(issuers, st)
	}
	return map[string]any{"issuers": issuers, "introspection": v.introspector != nil}
}

// Issuers lists the configured issuers' configs.
func (v *Verifier) Issuers() []*Config {
	out := make([]*Config, 0, len(v.byIssuer))
	for _, c := range v.byIssuer {
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b *Config) int { return strings.Compare(a.Issuer, b.Issuer) })
	return out
}

// Verify checks raw: an *Error naming the failed check, an error wrapping
// ErrUnavailable when it cannot be checked now, or its claims.
func (v *Verifier) Verify(ctx context.Context, raw string) (Claims, error) {
	return v.verify(ctx, raw, sha256.Sum256([]byte(raw)))
}

// verify is Verify given raw's SHA-256 (Resolve needs it too). A JWT
// remembered as verified is answered before anything is parsed.
func (v *Verifier) verify(ctx context.Context, raw string, sum [sha256.Size]byte) (Claims, error) {
	if len(raw) > MaxBytes {
		return fail("malformed", "token is over %d bytes", MaxBytes)
	}
	if c, ok := v.remembered(sum); ok {
		return c, nil
	}
	iss, isJWT := jwtIssuer(raw)
	switch {
	case isJWT && len(v.byIssuer) > 0:
		c, ok := v.byIssuer[iss]
		if !ok {
			return fail("iss", "issuer %q is not one this server accepts tokens from", iss)
		}
		return v.verifyJWT(ctx, c, raw, sum)
	case v.introspector != nil:
		return v.introspect(ctx, raw)
	case isJWT:
		return fail("iss", "issuer %q is not one this server accepts tokens from", iss)
	}
	return fail("malformed", "not a JWT, and no introspection endpoint is configured for opaque tokens")
}

// remembered returns the claims of a JWT the cache holds as verified,
// while they are good: before its until, and under the key set it was
// verified with.
func (v *Verifier) remembered(sum [sha256.Size]byte) (Claims, bool) {
	if v.verified == nil {
		return Claims{}, false
	}
	e, ok := v.verified.GetFresh(string(sum[:]), func(e verifiedJWT) bool {
		return e.issuer.now().Before(e.until) && e.gen == generation(e.issuer)
	})
	return e.claims, ok
}

// generation is c's key set's generation; 0 for keys that never change.
func generation(c *Config) uint64 {
	if g, ok := c.Keys.(generational); ok {
		return g.Generation()
	}
	return 0
}

// verifyJWT is Verify with c, remembering a token that passes.
func (v *Verifier) verifyJWT(ctx context.Context, c *Config, raw string, sum [sha256.Size]byte) (Claims, error) {
	if v.verified == nil {
		return Verify(ctx, c, raw)
	}
	gen := generation(c)
	now := c.now()
	claims, err := Verify(ctx, c, raw)
	if err != nil {
		return claims, err
	}
	until := now.Add(v.ttl)
	if exp := claims.Expires.Add(c.Leeway); exp.Before(until) {
		until = exp
	}
	key := string(sum[:])
	size := int64(len(key)) + 3*int64(len(raw)) + 256 // the claims hold about the payload, decoded into maps
	// Replace, not Put: a stale entry for this token may still be cached.
	v.verified.Replace(key, verifiedJWT{claims: claims, until: until, gen: gen, issuer: c}, size)
	return claims, nil
}

func (v *Verifier) introspect(ctx context.Context, raw string) (Claims, error) {
	res, err := v.introspector.Introspect(ctx, raw)
	if err != nil {
		return Claims{}, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	if !res.Active {
		return fail("active", "the authorization server says the token is not active")
	}
	all := map[string]any{}
	for k, x := range res.Claims {
		if k != "active" {
			all[k] = x
		}
	}
	str := func(k string) string { s, _ := all[k].(string); return s }
	out := Claims{Issuer: str("iss"), Subject: str("sub"), ClientID: str("client_id"), JTI: str("jti"), All: all}
	if out.Subject == "" {
		out.Subject = str("username")
	}
	if exp, ok := numericDate(all["exp"]); ok {
		out.Expires = exp
	}
	if aud, ok := all["aud"]; ok && v.audience != "" { // an answer need not name its audience
		if err := checkAudience(aud, v.audience); err != nil {
			return Claims{}, err
		}
	}
	scopes, err := scopesOf(all, "")
	if err != nil {
		return fail("scope", "%v", err)
	}
	out.Scopes = scopes
	return out, nil
}

// jwtIssuer reports whether raw is shaped like a JWS (three base64url
// parts, a JSON header naming an alg) and, if so, the iss its payload
// claims: unverified, used only to choose whose keys verify it.
func jwtIssuer(raw string) (iss string, ok bool) {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return "", false
	}
	var h struct {
		Alg string `json:"alg"`
	}
	hb, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil || json.Unmarshal(hb, &h) != nil || h.Alg == "" {
		return "", false
	}
	var p struct {
		Iss any `json:"iss"`
	}
	if pb, err := base64.RawURLEncoding.DecodeString(parts[1]); err == nil && json.Unmarshal(pb, &p) == nil {
		iss, _ = p.Iss.(string)
	}
	return iss, true
}
