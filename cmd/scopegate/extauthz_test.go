package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/scopegate/scopegate/internal/auth"
	"github.com/scopegate/scopegate/internal/engine"
	"github.com/scopegate/scopegate/internal/forwardauth"
	"github.com/scopegate/scopegate/internal/request"
	"github.com/scopegate/scopegate/internal/testpki"
)

// TestServeExtAuthz: serve --grpc-addr answers Envoy's ext_authz Check, as
// a client on Envoy's own protos calls it (the wire contract Envoy uses),
// with the gateway's credential in metadata; every call is logged.
func TestServeExtAuthz(t *testing.T) {
	is := testpki.NewIssuer(t)
	dir := t.TempDir()
	const gw = "envoy-secret-0123456789abcdef"
	tokens := filepath.Join(dir, "auth-tokens")
	if err := os.WriteFile(tokens, []byte("envoy "+gw+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "decisions.log")
	srv := startServe(t, dir, "--grpc-addr", "127.0.0.1:0", "--auth-tokens", tokens, "--decision-log", logPath,
		"--token-issuer", "https://id.example.com", "--token-audience", "https://api.example.com", "--token-jwks", is.JWKS)
	if srv.grpc == "" {
		t.Fatal("no ext_authz address logged")
	}
	conn, err := grpc.NewClient(srv.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := authv3.NewAuthorizationClient(conn)
	tok := is.Token(t, "at+jwt", map[string]any{"iss": "https://id.example.com", "aud": "https://api.example.com",
		"sub": "user-7", "client_id": "translator-bot", "exp": time.Now().Add(time.Hour).Unix(), "scope": "project:read"})
	check := func(ctx context.Context, method, path, authz string) (*authv3.CheckResponse, error) {
		h := map[string]string{}
		if authz != "" {
			h["authorization"] = authz
		}
		return c.Check(ctx, &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
			Http: &authv3.AttributeContext_HttpRequest{Method: method, Path: path, Headers: h}}}})
	}
	// Health checking is open, as /ready is, and says SERVING with a policy.
	for _, svc := range []string{"", "envoy.service.auth.v3.Authorization"} {
		hr, err := healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{Service: svc})
		if err != nil || hr.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("health of %q: %v %v", svc, hr, err)
		}
	}
	if _, err := check(context.Background(), "GET", "/projects/42", "Bearer "+tok); status.Code(err) != codes.Unauthenticated {
		t.Errorf("without Envoy's credential: %v", err)
	}
	ctx := metadata.AppendToOutgoingContext(context.Background(), "x-scopegate-authorization", "Bearer "+gw)
	var ids []string
	for _, tc := range []struct {
		method, path, authz string
		code                codes.Code
		reason              string
	}{
		{"GET", "/projects/42", "Bearer " + tok, codes.OK, "allowed"},
		{"POST", "/projects/42/launch", "Bearer " + tok, codes.PermissionDenied, "missing_scope"},
		{"GET", "/projects/42", "", codes.Unauthenticated, "missing_token"},
		{"GET", "/projects/42", "Bearer " + tok[:len(tok)-3] + "AAA", codes.Unauthenticated, "invalid_token"},
	} {
		resp, err := check(ctx, tc.method, tc.path, tc.authz)
		if err != nil {
			t.Fatal(err)
		}
		meta := resp.GetDynamicMetadata().GetFields()
		if codes.Code(resp.GetStatus().GetCode()) != tc.code || meta["scopegate_reason"].GetStringValue() != tc.reason {
			t.Errorf("%s %s: %v", tc.method, tc.path, resp)
		}
		ids = append(ids, meta["scopegate_decision_id"].GetStringValue())
	}
	// One request is bounded (1 MiB): a larger one is refused and the
	// service goes on answering.
	huge := map[string]string{"authorization": "Bearer " + tok, "x-padding": strings.Repeat("a", 2<<20)}
	if _, err := c.Check(ctx, &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
		Http: &authv3.AttributeContext_HttpRequest{Method: "GET", Path: "/projects/42", Headers: huge}}}}); status.Code(err) != codes.ResourceExhausted {
		t.Errorf("a 2 MiB request: %v", err)
	}
	if resp, err := check(ctx, "GET", "/projects/42", "Bearer "+tok); err != nil || codes.Code(resp.GetStatus().GetCode()) != codes.OK {
		t.Errorf("after the large request: %v %v", resp, err)
	}
	// The log has every call, as the gateway's, under the ids Envoy got.
	out, _, code := runCLI(t, "audit", "query", logPath, "-o", "json")
	if code != 0 {
		t.Fatalf("audit query: exit %d", code)
	}
	for _, id := range ids {
		if !strings.Contains(out, `"decision_id":"`+id+`"`) {
			t.Errorf("decision %s not in the log", id)
		}
	}
	if n := strings.Count(out, `"caller":"token:envoy"`); n != len(ids)+1 {
		t.Errorf("%d records name Envoy as the caller, want %d", n, len(ids))
	}
	if strings.Contains(out, tok) || strings.Contains(out, gw) {
		t.Error("a token reached the log")
	}
}

// TestServeGatewayDryRun: with --gateway-dry-run, a forwarded request that
// is denied goes through (200, marked) and the log records the deny.
func TestServeGatewayDryRun(t *testing.T) {
	dir := t.TempDir()
	logPath := filepath.Join(dir, "decisions.log")
	srv := startServe(t, dir, "--gateway-dry-run", "--decision-log", logPath)
	req, _ := http.NewRequest("GET", srv.url+"/v1/forward-auth", nil)
	req.Header.Set("X-Forwarded-Method", "POST")
	req.Header.Set("X-Forwarded-Uri", "/projects/42/launch")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var d map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&d)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("X-Scopegate-Dry-Run") != "deny" || d["allow"] != false || d["reason"] != "missing_token" {
		t.Fatalf("dry run: %d %v %v", resp.StatusCode, resp.Header, d)
	}
	out, _, code := runCLI(t, "audit", "query", logPath, "--deny", "-o", "json")
	if code != 0 || !strings.Contains(out, `"reason":"missing_token"`) || !strings.Contains(out, `"gateway_dry_run":"true"`) {
		t.Errorf("the log does not record the deny: %d %s", code, out)
	}
	if v := srv.metric(t, "scopegate_gateway_dry_run_denies_total"); v != 1 {
		t.Errorf("dry-run denies counted %v", v)
	}
}

// blockingDecider holds every call until released, counting how many it
// holds at once.
type blockingDecider struct {
	now, peak atomic.Int64
	release   chan struct{}
}

func (b *blockingDecider) CheckForwarded(_ *http.Request, _ forwardauth.Request) forwardauth.Outcome {
	n := b.now.Add(1)
	for p := b.peak.Load(); n > p && !b.peak.CompareAndSwap(p, n); p = b.peak.Load() {
	}
	<-b.release
	b.now.Add(-1)
	return forwardauth.Outcome{ID: "x", Decision: engine.Deny(engine.ReasonMissingScope, "held")}
}

func (b *blockingDecider) RejectForwarded(*http.Request, *request.Error) string { return "x" }

// TestGRPCStreamsBounded: one connection's calls beyond --grpc-max-streams
// wait; the service never holds more at once.
func TestGRPCStreamsBounded(t *testing.T) {
	d := &blockingDecider{release: make(chan struct{})}
	addr, stop, err := serveGRPC(gatewayConfig{grpcAddr: "127.0.0.1:0", grpcMaxMessage: 1 << 20, grpcMaxStreams: 4}, d,
		func() bool { return true }, &auth.Authenticator{}, nil, 100, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer stop(context.Background())
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := authv3.NewAuthorizationClient(conn)
	var wg sync.WaitGroup
	var failed atomic.Int64
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.Check(context.Background(), &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
				Http: &authv3.AttributeContext_HttpRequest{Method: "GET", Path: "/projects/1"}}}}); err != nil {
				failed.Add(1)
			}
		}()
	}
	for deadline := time.Now().Add(5 * time.Second); d.now.Load() < 4 && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
	}
	time.Sleep(200 * time.Millisecond) // room for a fifth, if the bound let one in
	if p := d.peak.Load(); p != 4 {
		t.Errorf("peak %d calls at once on one connection, bound 4", p)
	}
	close(d.release)
	wg.Wait()
	if n := failed.Load(); n != 0 {
		t.Errorf("%d of the waiting calls failed instead of waiting", n)
	}
}
