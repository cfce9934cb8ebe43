package token_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/scopegate/scopegate/internal/engine"
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
	// Over 8 KiB: refused before anything is asked (the fake would answer
	// ErrUnavailable for a token it does not know).
	if _, err := v.Verify(ctx, strings.Repeat("o", token.MaxBytes+1)); !errors.As(err, &te) || te.Check != "malformed" {
		t.Errorf("an opaque token over %d bytes: %v", token.MaxBytes, err)
	}
	jwt := a.Token(t, "at+jwt", map[string]any{"iss": "https://a.example.com", "aud": "api", "sub": "u", "exp": time.Now().Add(time.Hour).Unix()})
	if _, err := v.Verify(ctx, jwt); err != nil {
		t.Errorf("JWT: %v", err)
	}
}

// rotatingKeys is a KeySource whose set can be swapped, as a refetched
// JWKS URL is.
type rotatingKeys struct {
	mu   sync.Mutex
	keys token.StaticKeys
	gen  uint64
}

func (r *rotatingKeys) Key(ctx context.Context, kid string) (jwk.Key, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.keys.Key(ctx, kid)
}

func (r *rotatingKeys) Generation() uint64 { r.mu.Lock(); defer r.mu.Unlock(); return r.gen }

func (r *rotatingKeys) swap(k token.StaticKeys) {
	r.mu.Lock()
	r.keys, r.gen = k, r.gen+1
	r.mu.Unlock()
}

// TestVerifiedCache: a JWT that passed is remembered (by hash) until its
// exp or the TTL, is checked again once the key set changes (a withdrawn
// key stops being trusted), failures are never remembered, and the cache
// stays within its bytes.
func TestVerifiedCache(t *testing.T) {
	a, other := testpki.NewIssuerKid(t, "a-1"), testpki.NewIssuerKid(t, "z-9")
	aKeys, _ := token.LoadJWKS(a.JWKS)
	otherKeys, _ := token.LoadJWKS(other.JWKS)
	keys := &rotatingKeys{keys: aKeys}
	now := time.Unix(1_800_000_000, 0)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	c := &token.Config{Issuer: "https://a.example.com", Audience: "api", Keys: keys, Leeway: time.Second, Now: clock}
	v, err := token.NewVerifier([]*token.Config{c}, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	v.Cache(64<<10, time.Minute)
	tok := func(exp time.Duration, scope string) string {
		return a.Token(t, "at+jwt", map[string]any{"iss": "https://a.example.com", "aud": "api", "sub": "u", "exp": now.Add(exp).Unix(), "scope": scope})
	}
	ctx := context.Background()
	long, short := tok(time.Hour, "user:read"), tok(10*time.Second, "project:read")
	for range 3 {
		if c, err := v.Verify(ctx, long); err != nil || c.Scopes[0] != "user:read" {
			t.Fatalf("%+v %v", c, err)
		}
	}
	if hits, misses, _ := v.CacheStats(); hits != 2 || misses != 1 {
		t.Errorf("hits %d misses %d, want 2 and 1", hits, misses)
	}
	// Never past exp (+ leeway), even within the TTL.
	if _, err := v.Verify(ctx, short); err != nil {
		t.Fatal(err)
	}
	advance(12 * time.Second)
	var te *token.Error
	if _, err := v.Verify(ctx, short); !errors.As(err, &te) || te.Check != "exp" {
		t.Errorf("a cached token past its exp: %v", err)
	}
	// The issuer withdraws the key: the next check verifies again, and fails.
	keys.swap(otherKeys)
	if _, err := v.Verify(ctx, long); !errors.As(err, &te) || te.Check != "kid" {
		t.Errorf("a cached token after its key was withdrawn: %v", err)
	}
	keys.swap(aKeys)
	// Failures are not remembered: a forged signature costs a check each time.
	forged := long[:len(long)-6] + "AAAAAA"
	_, missesBefore, _ := v.CacheStats()
	for range 3 {
		if _, err := v.Verify(ctx, forged); err == nil {
			t.Fatal("forged token accepted")
		}
	}
	if _, misses, _ := v.CacheStats(); misses != missesBefore+3 {
		t.Errorf("a failure was remembered: %d misses for 3 tries", misses-missesBefore)
	}
	// Bounded in bytes, whatever tokens come; and past the TTL, checked again.
	for i := range 300 {
		if _, err := v.Verify(ctx, tok(time.Hour, "user:read project:"+strings.Repeat("x", i%50))); err != nil {
			t.Fatal(err)
		}
		if _, _, b := v.CacheStats(); b > 64<<10 {
			t.Fatalf("cache holds %d bytes", b)
		}
	}
	// Past the TTL (1 min), even well before its exp, a token is verified
	// again: remembered first, then checked once more.
	fresh := tok(time.Hour, "glossary:read")
	v.Verify(ctx, fresh)
	hitsBefore, missesBefore, _ := v.CacheStats()
	v.Verify(ctx, fresh)
	if hits, _, _ := v.CacheStats(); hits != hitsBefore+1 {
		t.Fatal("a token just verified was not remembered")
	}
	advance(61 * time.Second)
	v.Verify(ctx, fresh)
	if _, misses, _ := v.CacheStats(); misses != missesBefore+1 {
		t.Error("a token past the TTL was not verified again")
	}
}

// TestVerifiedCacheConcurrent: many requests with one token share the
// remembered claims safely (run with -race).
func TestVerifiedCacheConcurrent(t *testing.T) {
	a := testpki.NewIssuerKid(t, "a-1")
	keys, _ := token.LoadJWKS(a.JWKS)
	v, _ := token.NewVerifier([]*token.Config{{Issuer: "https://a.example.com", Audience: "api", Keys: keys}}, nil, "")
	v.Cache(1<<20, time.Minute)
	tok := a.Token(t, "at+jwt", map[string]any{"iss": "https://a.example.com", "aud": "api", "sub": "u", "exp": time.Now().Add(time.Hour).Unix(), "scope": "user:read"})
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				in := engine.Input{AccessToken: tok}
				if d, bad := v.Resolve(context.Background(), &in); d != nil || bad != nil || in.GrantedScopes[0] != "user:read" || in.Token["sub"] != "u" {
					t.Error(d, bad)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// FuzzTokenConfig: any --token-config file is refused with every error
// naming the file, or gives issuers each with an iss (no two alike), an
// audience and keys.
func FuzzTokenConfig(f *testing.F) {
	f.Add("issuers:\n  - issuer: https://a\n    audience: x\n    jwks: https://a/jwks\n")
	f.Add("issuers:\n  - issuer: a\n    audience: x\n    jwks: https://a/jwks\n  - issuer: a\n")
	f.Add("issuers: [{issuer: a, leeway: -1s, typ: [JWT], scope_claim: scp, jwks: 'http://127.0.0.1:1/k', audience: b}]")
	f.Add("{}")
	f.Fuzz(func(t *testing.T, text string) {
		p := filepath.Join(t.TempDir(), "tokens.yaml")
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		issuers, err := token.LoadFile(p, time.Second)
		if err != nil {
			for _, line := range strings.Split(err.Error(), "\n") {
				if !strings.HasPrefix(line, p) && !strings.HasPrefix(line, "token config: ") {
					t.Fatalf("an error line without the file: %q", line)
				}
			}
			return
		}
		seen := map[string]bool{}
		for _, c := range issuers {
			if c.Issuer == "" || c.Audience == "" || c.Keys == nil || seen[c.Issuer] {
				t.Fatalf("accepted %+v", c)
			}
			seen[c.Issuer] = true
		}
	})
}

// FuzzVerifier: whatever the token, the verifier chooses its path (issuer
// by iss, or introspection) without panicking, and accepts nothing but a
// token its issuer signed or the endpoint calls active.
func FuzzVerifier(f *testing.F) {
	is := testpki.NewIssuerKid(f, "a-1")
	keys, err := token.LoadJWKS(is.JWKS)
	if err != nil {
		f.Fatal(err)
	}
	v, err := token.NewVerifier([]*token.Config{{Issuer: "https://a.example.com", Audience: "api", Keys: keys}},
		fakeIntrospector{"opaque-live": {Active: true, Claims: map[string]any{"active": true, "scope": "user:read"}}}, "api")
	if err != nil {
		f.Fatal(err)
	}
	good := is.Token(f, "at+jwt", map[string]any{"iss": "https://a.example.com", "aud": "api", "sub": "u", "exp": time.Now().Add(time.Hour).Unix()})
	f.Add(good)
	f.Add("opaque-live")
	f.Add("eyJhbGciOiJub25lIn0.eyJpc3MiOiJodHRwczovL2EuZXhhbXBsZS5jb20ifQ.")
	f.Add("a.b.c")
	f.Fuzz(func(t *testing.T, raw string) {
		c, err := v.Verify(context.Background(), raw)
		if err == nil && raw != good && raw != "opaque-live" {
			t.Fatalf("accepted %q: %+v", raw, c)
		}
	})
}
