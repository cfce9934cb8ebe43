package server_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/scopegate/scopegate/internal/server"
	"github.com/scopegate/scopegate/internal/testpki"
	"github.com/scopegate/scopegate/internal/token"
)

// BenchmarkDecideToken compares /v1/decide given the end user's JWT access
// token (verified on every request: RS256; or remembered once verified,
// token-cached) with the same question given as a scope list, over HTTP,
// the decision log off:
//
//	go test -run '^$' -bench DecideToken -benchtime 3s ./internal/server/
func BenchmarkDecideToken(b *testing.B) {
	eng := repoEngine(b)
	is := testpki.NewIssuer(b)
	keys, err := token.LoadJWKS(is.JWKS)
	if err != nil {
		b.Fatal(err)
	}
	url := newTestServer(b, server.New(eng, server.Options{Tokens: token.Single(&token.Config{Issuer: "iss", Audience: "aud", Keys: keys})})) + "/v1/decide"
	cached := token.Single(&token.Config{Issuer: "iss", Audience: "aud", Keys: keys})
	cached.Cache(token.DefaultCacheBytes, token.DefaultCacheTTL)
	cachedURL := newTestServer(b, server.New(eng, server.Options{Tokens: cached})) + "/v1/decide"
	tok := is.Token(b, "at+jwt", map[string]any{"iss": "iss", "aud": "aud", "sub": "user-7", "client_id": "translator-bot",
		"exp": time.Now().Add(time.Hour).Unix(), "scope": "openid user:read project:write"})
	for _, tc := range []struct{ name, url, body string }{
		{"scopes", url, `{"subject":"user-7","client_id":"translator-bot","scope":"user:read project:write","method":"GET","path":"/projects/42"}`},
		{"token", url, `{"access_token":"` + tok + `","method":"GET","path":"/projects/42"}`},
		{"token-cached", cachedURL, `{"access_token":"` + tok + `","method":"GET","path":"/projects/42"}`},
	} {
		b.Run(tc.name, func(b *testing.B) {
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
			b.SetParallelism(8)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					resp, err := client.Post(tc.url, "application/json", strings.NewReader(tc.body))
					if err != nil {
						b.Fatal(err)
					}
					resp.Body.Close()
					if resp.StatusCode != 200 {
						b.Fatalf("status %d", resp.StatusCode)
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "decisions/s")
		})
	}
}
