package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/scopegate/scopegate/internal/testpki"
)

// TestServeGatewayMTLS: with caller authentication by client certificate,
// a gateway authenticates with its certificate while Authorization carries
// the end user's token, over HTTPS (/v1/forward-auth) and over gRPC
// (ext_authz) alike; without a certificate both are refused.
func TestServeGatewayMTLS(t *testing.T) {
	dir := t.TempDir()
	ca := testpki.NewCA(t)
	is := testpki.NewIssuer(t)
	srv := startServe(t, dir, append(mtlsArgs(t, dir, ca), "--grpc-addr", "127.0.0.1:0", "--decision-log", filepath.Join(dir, "decisions.log"),
		"--token-issuer", "https://id.example.com", "--token-audience", "https://api.example.com", "--token-jwks", is.JWKS)...)
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca.PEM)
	c, k := ca.Issue(t, "gateway-envoy", false)
	pair, err := tls.X509KeyPair(c, k)
	if err != nil {
		t.Fatal(err)
	}
	user := is.Token(t, "at+jwt", map[string]any{"iss": "https://id.example.com", "aud": "https://api.example.com", "sub": "u",
		"client_id": "c", "exp": time.Now().Add(time.Hour).Unix(), "scope": "project:read"})

	forward := func(certs []tls.Certificate) int {
		client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: certs}}}
		req, _ := http.NewRequest("GET", strings.Replace(srv.url, "http://", "https://", 1)+"/v1/forward-auth", nil)
		req.Header.Set("X-Forwarded-Method", "GET")
		req.Header.Set("X-Forwarded-Uri", "/projects/42")
		req.Header.Set("Authorization", "Bearer "+user)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := forward([]tls.Certificate{pair}); got != 200 {
		t.Errorf("forward auth with the gateway's certificate: %d", got)
	}
	if got := forward(nil); got != 401 {
		t.Errorf("forward auth without a certificate: %d", got)
	}

	check := func(certs []tls.Certificate) (*authv3.CheckResponse, error) {
		creds := credentials.NewTLS(&tls.Config{RootCAs: roots, Certificates: certs})
		conn, err := grpc.NewClient(srv.grpc, grpc.WithTransportCredentials(creds))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return authv3.NewAuthorizationClient(conn).Check(ctx, &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
			Http: &authv3.AttributeContext_HttpRequest{Method: "GET", Path: "/projects/42", Headers: map[string]string{"authorization": "Bearer " + user}}}}})
	}
	if resp, err := check([]tls.Certificate{pair}); err != nil || codes.Code(resp.GetStatus().GetCode()) != codes.OK {
		t.Errorf("ext_authz with the gateway's certificate: %v %v", resp, err)
	}
	if _, err := check(nil); status.Code(err) != codes.Unauthenticated {
		t.Errorf("ext_authz without a certificate: %v", err)
	}
	out, _, code := runCLI(t, "audit", "query", filepath.Join(dir, "decisions.log"), "-o", "json")
	if code != 0 || strings.Count(out, `"caller":"mtls:gateway-envoy"`) != 2 {
		t.Errorf("records naming the gateway's certificate: exit %d\n%s", code, out)
	}
}
