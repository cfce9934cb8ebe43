package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/scopegate/scopegate/internal/engine"
	"github.com/scopegate/scopegate/internal/policyvariant"
	"github.com/scopegate/scopegate/internal/server"
	"github.com/scopegate/scopegate/internal/testpki"
	"github.com/scopegate/scopegate/internal/token"
)

// TestPolicySeesTokenClaims: a verified token's claims are input.token, so
// a rule can require, say, a multi-factor acr; the decision cache keys on
// the claim the rule reads.
func TestPolicySeesTokenClaims(t *testing.T) {
	src := repoSource(t)
	err := policyvariant.EditAuthz(src.Modules, func(authz string) (string, error) {
		return policyvariant.RequireAlso(authz, `input.token.acr == "mfa"`, "")
	})
	if err != nil {
		t.Fatal(err)
	}
	eng, err := engine.New(context.Background(), src)
	if err != nil {
		t.Fatal(err)
	}
	if st := eng.CacheStats(); !st.Enabled || strings.Join(st.Fields, " ") != "token.acr" {
		t.Fatalf("cache %+v", st)
	}
	is := testpki.NewIssuer(t)
	keys, err := token.LoadJWKS(is.JWKS)
	if err != nil {
		t.Fatal(err)
	}
	url := newTestServer(t, server.New(eng, server.Options{Tokens: token.Single(&token.Config{Issuer: "iss", Audience: "aud", Keys: keys})})) + "/v1/decide"
	for _, acr := range []string{"mfa", "pwd", "mfa", "pwd"} {
		tok := is.Token(t, "at+jwt", map[string]any{"iss": "iss", "aud": "aud", "sub": "u", "client_id": "c", "acr": acr,
			"exp": time.Now().Add(time.Hour).Unix(), "scope": "project:read"})
		resp, err := http.Post(url, "application/json", strings.NewReader(`{"access_token":"`+tok+`","action":"project:read"}`))
		if err != nil {
			t.Fatal(err)
		}
		var d decideResponse
		json.NewDecoder(resp.Body).Decode(&d)
		resp.Body.Close()
		if d.Allow != (acr == "mfa") {
			t.Errorf("acr %s: %+v", acr, d)
		}
	}
}
