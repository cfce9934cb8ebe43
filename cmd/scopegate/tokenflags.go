package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/scopegate/scopegate/internal/jwks"
	"github.com/scopegate/scopegate/internal/token"
)

// tokenFlags are the --token-* flags that say which JWT access tokens are
// accepted (serve, decide).
type tokenFlags struct {
	issuer, audience, jwks string
	typs                   []string
	leeway                 time.Duration
	jwksMinRefresh         time.Duration
}

func (t *tokenFlags) register(f *pflag.FlagSet) {
	f.StringVar(&t.issuer, "token-issuer", "", "accept JWT access tokens (access_token) from this issuer (iss, exactly)")
	f.StringVar(&t.audience, "token-audience", "", "the audience (aud) access tokens must be for: this API")
	f.StringVar(&t.jwks, "token-jwks", "", "the issuer's public keys: a JWKS file, or its https:// URL (refetched as its Cache-Control says and when a token names an unknown key)")
	f.DurationVar(&t.jwksMinRefresh, "token-jwks-min-refresh", jwks.DefaultMinRefresh, "least time between two fetches of a JWKS URL (an unknown kid triggers one)")
	f.StringSliceVar(&t.typs, "token-typ", token.DefaultTyps, "accepted typ headers; RFC 9068 says at+jwt, many providers (Keycloak, Entra ID, older Auth0 and Okta) write JWT: at+jwt,JWT accepts both")
	f.DurationVar(&t.leeway, "token-leeway", 60*time.Second, "allowed clock skew on exp, nbf and iat")
}

// config is the verifier the flags describe, nil when none is configured.
func (t *tokenFlags) config() (*token.Config, error) {
	switch countSet(t.issuer, t.audience, t.jwks) {
	case 0:
		return nil, nil
	case 3:
	default:
		return nil, errors.New("--token-issuer, --token-audience and --token-jwks go together")
	}
	keys, err := keySource(t.jwks, t.jwksMinRefresh)
	if err != nil {
		return nil, fmt.Errorf("--token-jwks: %w", err)
	}
	return &token.Config{Issuer: t.issuer, Audience: t.audience, Keys: keys, Typs: t.typs, Leeway: t.leeway}, nil
}

// keySource is a JWKS file, or a URL fetched as needed.
func keySource(where string, minRefresh time.Duration) (token.KeySource, error) {
	if !strings.Contains(where, "://") {
		return token.LoadJWKS(where)
	}
	if minRefresh <= 0 {
		return nil, errors.New("--token-jwks-min-refresh must be positive")
	}
	return jwks.New(where, jwks.Options{MinRefresh: minRefresh, Validate: token.CheckKeys})
}

// prefetch fetches the JWKS URLs of cfg once, so the first token does not
// wait for them; a failure is logged, not fatal: until a fetch succeeds,
// tokens are denied with token_unavailable.
func prefetch(ctx context.Context, cfg *token.Config, logger *slog.Logger) {
	r, ok := cfg.Keys.(*jwks.Remote)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, jwks.FetchTimeout)
	defer cancel()
	if err := r.Fetch(ctx); err != nil {
		logger.Warn("cannot fetch the issuer's JWKS; access tokens are denied (token_unavailable) until it can be fetched", "url", r.URL(), "error", err)
		return
	}
	logger.Info("fetched the issuer's JWKS", "url", r.URL())
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
