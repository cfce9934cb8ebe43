package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"

	"github.com/scopegate/scopegate/internal/introspect"
	"github.com/scopegate/scopegate/internal/jwks"
	"github.com/scopegate/scopegate/internal/token"
)

// introspectionSecretEnv holds the introspection client secret when no
// file does; it is never a flag value (flags show in ps and shell history).
const introspectionSecretEnv = "SCOPEGATE_TOKEN_INTROSPECTION_CLIENT_SECRET"

// tokenFlags are the --token-* flags that say which access tokens are
// accepted (serve, decide): JWTs from one issuer, opaque tokens through an
// introspection endpoint.
type tokenFlags struct {
	issuer, audience, jwks string
	file                   string
	typs                   []string
	leeway                 time.Duration
	jwksMinRefresh         time.Duration

	introspectionURL, introspectionClientID, introspectionSecretFile string
	introspectionTTL, introspectionTimeout                           time.Duration
	introspectionCacheBytes                                          byteSize
	introspectionMaxInFlight                                         int

	cacheBytes byteSize
	cacheTTL   time.Duration
}

func (t *tokenFlags) register(f *pflag.FlagSet) {
	f.StringVar(&t.issuer, "token-issuer", "", "accept JWT access tokens (access_token) from this issuer (iss, exactly)")
	f.StringVar(&t.audience, "token-audience", "", "the audience (aud) access tokens must be for: this API")
	f.StringVar(&t.jwks, "token-jwks", "", "the issuer's public keys: a JWKS file, or its https:// URL (refetched as its Cache-Control says and when a token names an unknown key)")
	f.DurationVar(&t.jwksMinRefresh, "token-jwks-min-refresh", jwks.DefaultMinRefresh, "least time between two fetches of a JWKS URL (an unknown kid triggers one)")
	f.StringSliceVar(&t.typs, "token-typ", token.DefaultTyps, "accepted typ headers; RFC 9068 says at+jwt, many providers (Keycloak, Entra ID, older Auth0 and Okta) write JWT: at+jwt,JWT accepts both")
	f.DurationVar(&t.leeway, "token-leeway", token.DefaultLeeway, "allowed clock skew on exp, nbf and iat")
	f.StringVar(&t.file, "token-config", "", "YAML file listing the issuers whose JWTs are accepted (issuer, audience, jwks, typ, leeway, scope_claim each); instead of --token-issuer/--token-jwks")
	f.StringVar(&t.introspectionURL, "token-introspection-url", "", "check opaque (non-JWT) access tokens at this RFC 7662 introspection endpoint (https://)")
	f.StringVar(&t.introspectionClientID, "token-introspection-client-id", "", "scopegate's client id at the introspection endpoint (HTTP Basic)")
	f.StringVar(&t.introspectionSecretFile, "token-introspection-client-secret-file", "", "file holding scopegate's client secret at the introspection endpoint (or set "+introspectionSecretEnv+")")
	f.DurationVar(&t.introspectionTTL, "token-introspection-cache-ttl", introspect.DefaultTTL, "reuse an introspection answer this long at most (never past the token's exp)")
	f.DurationVar(&t.introspectionTimeout, "token-introspection-timeout", introspect.DefaultTimeout, "deadline for one introspection call; past it the decision is token_unavailable")
	f.IntVar(&t.introspectionMaxInFlight, "token-introspection-max-in-flight", introspect.DefaultMaxInFlight, "most introspection calls (and connections to the endpoint) at once; past it a call waits for a slot within the timeout, then is token_unavailable")
	t.introspectionCacheBytes = introspect.DefaultCacheBytes
	t.cacheBytes = token.DefaultCacheBytes
	f.Var(&t.cacheBytes, "token-cache-bytes", "memory for remembering JWTs that passed every check, keyed by SHA-256, e.g. 16MiB (0: verify every time)")
	f.DurationVar(&t.cacheTTL, "token-cache-ttl", token.DefaultCacheTTL, "remember a verified JWT this long at most (never past its exp; a refetched key set drops it)")
	f.Var(&t.introspectionCacheBytes, "token-introspection-cache-bytes", "memory for cached introspection answers, e.g. 16MiB (0: no cache)")
}

// config is the verifier the flags describe, nil when none is configured.
func (t *tokenFlags) config() (*token.Verifier, error) {
	var issuers []*token.Config
	if t.file != "" {
		if countSet(t.issuer, t.jwks) > 0 {
			return nil, errors.New("give --token-config or --token-issuer/--token-jwks, not both: the file lists every issuer")
		}
		var err error
		if issuers, err = token.LoadFile(t.file, t.jwksMinRefresh); err != nil {
			return nil, err
		}
	}
	switch countSet(t.issuer, t.jwks) {
	case 0:
	case 2:
		if t.audience == "" {
			return nil, errors.New("--token-issuer, --token-audience and --token-jwks go together")
		}
		keys, err := token.Keys(t.jwks, t.jwksMinRefresh)
		if err != nil {
			return nil, fmt.Errorf("--token-jwks: %w", err)
		}
		issuers = append(issuers, &token.Config{Issuer: t.issuer, Audience: t.audience, Keys: keys, Typs: t.typs, Leeway: t.leeway})
	default:
		return nil, errors.New("--token-issuer, --token-audience and --token-jwks go together")
	}
	in, err := t.introspector()
	if err != nil {
		return nil, err
	}
	if len(issuers) == 0 && in == nil {
		if t.audience != "" {
			return nil, errors.New("--token-audience needs --token-issuer and --token-jwks, or --token-introspection-url")
		}
		return nil, nil
	}
	var intro token.Introspector
	if in != nil {
		intro = in
	}
	if t.cacheBytes < 0 || t.cacheTTL <= 0 {
		return nil, errors.New("--token-cache-bytes must not be negative and --token-cache-ttl must be positive")
	}
	v, err := token.NewVerifier(issuers, intro, t.audience)
	if err != nil {
		return nil, err
	}
	v.Cache(int64(t.cacheBytes), t.cacheTTL)
	return v, nil
}

// introspector is the introspection client the flags describe, or nil.
func (t *tokenFlags) introspector() (*introspect.Client, error) {
	if t.introspectionURL == "" {
		if t.introspectionClientID != "" || t.introspectionSecretFile != "" {
			return nil, errors.New("--token-introspection-client-id and --token-introspection-client-secret-file need --token-introspection-url")
		}
		return nil, nil
	}
	secret := os.Getenv(introspectionSecretEnv)
	switch {
	case t.introspectionSecretFile != "" && secret != "":
		return nil, errors.New("give the introspection client secret in --token-introspection-client-secret-file or " + introspectionSecretEnv + ", not both")
	case t.introspectionSecretFile != "":
		raw, err := os.ReadFile(t.introspectionSecretFile)
		if err != nil {
			return nil, fmt.Errorf("--token-introspection-client-secret-file: %w", err)
		}
		secret = strings.TrimSpace(string(raw))
	}
	if t.introspectionClientID == "" || secret == "" {
		return nil, errors.New("--token-introspection-url needs --token-introspection-client-id and a secret (--token-introspection-client-secret-file or " + introspectionSecretEnv + ")")
	}
	if t.introspectionTTL <= 0 || t.introspectionTimeout <= 0 || t.introspectionMaxInFlight <= 0 || t.introspectionCacheBytes < 0 {
		return nil, errors.New("--token-introspection-cache-ttl, --token-introspection-timeout and --token-introspection-max-in-flight must be positive, --token-introspection-cache-bytes not negative")
	}
	cacheBytes := int64(t.introspectionCacheBytes)
	if cacheBytes == 0 {
		cacheBytes = -1 // no cache
	}
	c, err := introspect.New(introspect.Options{URL: t.introspectionURL, ClientID: t.introspectionClientID, ClientSecret: secret,
		TTL: t.introspectionTTL, Timeout: t.introspectionTimeout, CacheBytes: cacheBytes, MaxInFlight: t.introspectionMaxInFlight})
	if err != nil {
		return nil, fmt.Errorf("--token-introspection-url: %w", err)
	}
	return c, nil
}

// prefetch fetches the issuers' JWKS URLs once, all at once, so the first
// token does not wait for them and start-up waits at most one fetch
// timeout however many issuers there are; a failure is logged, not fatal:
// until a fetch succeeds, that issuer's tokens are denied with
// token_unavailable.
func prefetch(ctx context.Context, v *token.Verifier, logger *slog.Logger) {
	var wg sync.WaitGroup
	for _, c := range v.Issuers() {
		r, ok := c.Keys.(*jwks.Remote)
		if !ok {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			fctx, cancel := context.WithTimeout(ctx, jwks.FetchTimeout)
			defer cancel()
			if err := r.Fetch(fctx); err != nil {
				logger.Warn("cannot fetch the issuer's JWKS; its access tokens are denied (token_unavailable) until it can be fetched", "issuer", c.Issuer, "url", r.URL(), "error", err)
				return
			}
			logger.Info("fetched the issuer's JWKS", "issuer", c.Issuer, "url", r.URL())
		}()
	}
	wg.Wait()
}

// countSet counts the non-empty values.
func countSet(vs ...string) int {
	n := 0
	for _, v := range vs {
		if v != "" {
			n++
		}
	}
	return n
}

// registerTokenMetrics exposes how checking tokens goes: per issuer with a
// JWKS URL, its fetches, failed fetches and when its keys expire (alert
// before they do); for introspection, its calls, failed calls and cache.
func registerTokenMetrics(reg prometheus.Registerer, v *token.Verifier) {
	cache := func(i int) func() float64 {
		return func() float64 {
			hits, misses, bytes := v.CacheStats()
			return [...]float64{float64(hits), float64(misses), float64(bytes)}[i]
		}
	}
	reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "scopegate_token_cache_hits_total", Help: "JWTs found verified in the token cache."}, cache(0)),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "scopegate_token_cache_misses_total", Help: "JWTs not (or no longer) in the token cache: verified in full."}, cache(1)),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "scopegate_token_cache_bytes", Help: "Memory the verified-token cache holds, as charged."}, cache(2)),
	)
	for _, c := range v.Issuers() {
		r, ok := c.Keys.(*jwks.Remote)
		if !ok {
			continue
		}
		labels := prometheus.Labels{"issuer": c.Issuer}
		reg.MustRegister(
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "scopegate_token_jwks_fetches_total", ConstLabels: labels,
				Help: "Fetches of the issuer's JWKS URL started."}, func() float64 { n, _, _ := r.Stats(); return float64(n) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "scopegate_token_jwks_fetch_failures_total", ConstLabels: labels,
				Help: "Fetches of the issuer's JWKS URL that failed (the cached keys stayed)."}, func() float64 { _, n, _ := r.Stats(); return float64(n) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "scopegate_token_jwks_expiry_timestamp_seconds", ConstLabels: labels,
				Help: "When the issuer's cached keys expire, as a Unix time (0: none fetched yet); past it, its tokens are token_unavailable."},
				func() float64 {
					_, _, exp := r.Stats()
					if exp.IsZero() {
						return 0
					}
					return float64(exp.Unix())
				}),
		)
	}
	in, ok := v.Introspector().(*introspect.Client)
	if !ok {
		return
	}
	stat := func(i int) func() float64 {
		return func() float64 {
			calls, failures, hits, misses, bytes := in.Stats()
			return [...]float64{float64(calls), float64(failures), float64(hits), float64(misses), float64(bytes)}[i]
		}
	}
	reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "scopegate_token_introspection_calls_total", Help: "Calls to the introspection endpoint."}, stat(0)),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "scopegate_token_introspection_failures_total", Help: "Introspection calls that failed: each was a token_unavailable deny."}, stat(1)),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "scopegate_token_introspection_cache_hits_total", Help: "Introspection answers reused from the cache."}, stat(2)),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "scopegate_token_introspection_cache_misses_total", Help: "Tokens not (or no longer) in the introspection cache."}, stat(3)),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "scopegate_token_introspection_cache_bytes", Help: "Memory the introspection cache holds, as charged."}, stat(4)),
	)
}
