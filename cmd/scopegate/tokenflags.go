package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/pflag"

	"github.com/scopegate/scopegate/internal/token"
)

// tokenFlags are the --token-* flags that say which JWT access tokens are
// accepted (serve, decide).
type tokenFlags struct {
	issuer, audience, jwks string
	typs                   []string
	leeway                 time.Duration
}

func (t *tokenFlags) register(f *pflag.FlagSet) {
	f.StringVar(&t.issuer, "token-issuer", "", "accept JWT access tokens (access_token) from this issuer (iss, exactly)")
	f.StringVar(&t.audience, "token-audience", "", "the audience (aud) access tokens must be for: this API")
	f.StringVar(&t.jwks, "token-jwks", "", "the issuer's public keys, a JWKS file")
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
	keys, err := token.LoadJWKS(t.jwks)
	if err != nil {
		return nil, fmt.Errorf("--token-jwks: %w", err)
	}
	return &token.Config{Issuer: t.issuer, Audience: t.audience, Keys: keys, Typs: t.typs, Leeway: t.leeway}, nil
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
