package extauthz_test

import (
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	"github.com/scopegate/scopegate/internal/auth"
	"github.com/scopegate/scopegate/internal/engine"
	"github.com/scopegate/scopegate/internal/extauthz"
	"github.com/scopegate/scopegate/internal/server"
	"github.com/scopegate/scopegate/internal/source"
	"github.com/scopegate/scopegate/internal/testpki"
	"github.com/scopegate/scopegate/internal/token"
)

// client serves the repository's policy over ext_authz in memory and
// returns a client on Envoy's protos.
func client(t *testing.T, is *testpki.Issuer, authn *auth.Authenticator, dryRun bool) authv3.AuthorizationClient {
	t.Helper()
	src, err := source.FromFiles("../../scopes.yaml", "../../policies")
	if err != nil {
		t.Fatal(err)
	}
	eng, err := engine.New(context.Background(), src)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := token.LoadJWKS(is.JWKS)
	if err != nil {
		t.Fatal(err)
	}
	srv := server.New(eng, server.Options{Tokens: token.Single(&token.Config{Issuer: "iss", Audience: "aud", Keys: keys}), GatewayDryRun: dryRun})
	ln := bufconn.Listen(1 << 20)
	g := grpc.NewServer()
	extauthz.New(srv, authn).Register(g)
	go g.Serve(ln)
	t.Cleanup(g.Stop)
	conn, err := grpc.NewClient("passthrough:///bufnet", grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
		return ln.DialContext(ctx)
	}), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return authv3.NewAuthorizationClient(conn)
}

func checkRequest(method, path string, headers map[string]string) *authv3.CheckRequest {
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
		Http: &authv3.AttributeContext_HttpRequest{Method: method, Path: path, Headers: headers},
	}}}
}

func header(hs []*corev3.HeaderValueOption, name string) string {
	for _, h := range hs {
		if h.GetHeader().GetKey() == name {
			if h.GetAppendAction() != corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD {
				return "(appended: " + h.GetHeader().GetValue() + ")"
			}
			return h.GetHeader().GetValue()
		}
	}
	return ""
}

func TestCheck(t *testing.T) {
	is := testpki.NewIssuer(t)
	c := client(t, is, nil, false)
	tok := is.Token(t, "at+jwt", map[string]any{"iss": "iss", "aud": "aud", "sub": "user-7", "client_id": "app-1",
		"exp": time.Now().Add(time.Hour).Unix(), "scope": "project:read"})
	ctx := context.Background()

	// Allowed: OK with the upstream headers, replacing a client's.
	resp, err := c.Check(ctx, checkRequest("GET", "/projects/42?page=2", map[string]string{"authorization": "Bearer " + tok, "x-scopegate-subject": "admin"}))
	if err != nil {
		t.Fatal(err)
	}
	ok := resp.GetOkResponse()
	if codes.Code(resp.GetStatus().GetCode()) != codes.OK || ok == nil {
		t.Fatalf("allowed: %v", resp)
	}
	if header(ok.Headers, "x-scopegate-subject") != "user-7" || header(ok.Headers, "x-scopegate-scopes") != "project:read" ||
		header(ok.Headers, "x-scopegate-client-id") != "app-1" || header(ok.Headers, "x-scopegate-decision-id") == "" {
		t.Errorf("upstream headers %v", ok.Headers)
	}
	meta := resp.GetDynamicMetadata().GetFields()
	if meta["scopegate_reason"].GetStringValue() != "allowed" || !meta["scopegate_allow"].GetBoolValue() ||
		meta["scopegate_decision_id"].GetStringValue() != header(ok.Headers, "x-scopegate-decision-id") {
		t.Errorf("dynamic metadata %v", meta)
	}

	for _, tc := range []struct {
		name      string
		req       *authv3.CheckRequest
		code      codes.Code
		http      int32
		reason    string
		challenge string
	}{
		{"missing scope", checkRequest("POST", "/projects/42/launch", map[string]string{"authorization": "Bearer " + tok}),
			codes.PermissionDenied, 403, "missing_scope", `Bearer error="insufficient_scope", scope="project:launch"`},
		{"no token", checkRequest("GET", "/projects/42", nil), codes.Unauthenticated, 401, "missing_token", "Bearer"},
		{"bad token", checkRequest("GET", "/projects/42", map[string]string{"authorization": "Bearer x.y.z"}), codes.Unauthenticated, 401, "invalid_token", `Bearer error="invalid_token"`},
		{"raw header map", &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
			Http: &authv3.AttributeContext_HttpRequest{Method: "POST", Path: "/projects/42/launch", HeaderMap: &corev3.HeaderMap{
				Headers: []*corev3.HeaderValue{{Key: "authorization", RawValue: []byte("Bearer " + tok)}}}}}}},
			codes.PermissionDenied, 403, "missing_scope", `Bearer error="insufficient_scope"`},
		{"no http attributes", &authv3.CheckRequest{}, codes.InvalidArgument, 400, "invalid_input", ""},
		{"dot segment", checkRequest("GET", "/me/../projects/1", map[string]string{"authorization": "Bearer " + tok}), codes.InvalidArgument, 400, "invalid_input", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := c.Check(ctx, tc.req)
			if err != nil {
				t.Fatal(err)
			}
			d := resp.GetDeniedResponse()
			if codes.Code(resp.GetStatus().GetCode()) != tc.code || d == nil || int32(d.GetStatus().GetCode()) != tc.http {
				t.Fatalf("got %v", resp)
			}
			if ch := header(d.Headers, "www-authenticate"); !strings.HasPrefix(ch, tc.challenge) || (tc.challenge == "") != (ch == "") {
				t.Errorf("challenge %q", ch)
			}
			meta := resp.GetDynamicMetadata().GetFields()
			if meta["scopegate_reason"].GetStringValue() != tc.reason || meta["scopegate_allow"].GetBoolValue() || meta["scopegate_decision_id"].GetStringValue() == "" {
				t.Errorf("dynamic metadata %v", meta)
			}
			if !strings.Contains(d.Body, `"`+tc.reason+`"`) && !strings.Contains(d.Body, tc.reason) {
				t.Errorf("body %s", d.Body)
			}
		})
	}
}

// TestCheckDryRun: a deny is let through, marked, with what would have
// been denied in the metadata.
func TestCheckDryRun(t *testing.T) {
	is := testpki.NewIssuer(t)
	c := client(t, is, nil, true)
	resp, err := c.Check(context.Background(), checkRequest("GET", "/projects/42", nil))
	if err != nil {
		t.Fatal(err)
	}
	meta := resp.GetDynamicMetadata().GetFields()
	if codes.Code(resp.GetStatus().GetCode()) != codes.OK || resp.GetOkResponse() == nil ||
		meta["scopegate_reason"].GetStringValue() != "missing_token" || meta["scopegate_allow"].GetBoolValue() || !meta["scopegate_dry_run"].GetBoolValue() ||
		header(resp.GetOkResponse().Headers, "x-scopegate-dry-run") != "deny" {
		t.Errorf("dry run: %v", resp)
	}
}

// TestCheckGatewayCredential: with caller auth on, Envoy authenticates with
// x-scopegate-authorization metadata; a call without it is refused with a
// gRPC error, which Envoy treats as a deny.
func TestCheckGatewayCredential(t *testing.T) {
	dir := t.TempDir()
	const gw = "envoy-secret-0123456789"
	if err := os.WriteFile(filepath.Join(dir, "tokens"), []byte("envoy "+gw+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := auth.New(auth.Options{TokenFile: filepath.Join(dir, "tokens")})
	if err != nil {
		t.Fatal(err)
	}
	is := testpki.NewIssuer(t)
	c := client(t, is, a, false)
	req := checkRequest("GET", "/projects/42", map[string]string{"authorization": "Bearer " + gw})
	if _, err := c.Check(context.Background(), req); status.Code(err) != codes.Unauthenticated {
		t.Errorf("without the gateway's credential (its token as the user's Authorization): %v", err)
	}
	ctx := metadata.AppendToOutgoingContext(context.Background(), "x-scopegate-authorization", "Bearer "+gw)
	resp, err := c.Check(ctx, req)
	if err != nil || resp.GetDeniedResponse() == nil || resp.GetDynamicMetadata().GetFields()["scopegate_reason"].GetStringValue() != "invalid_token" {
		t.Errorf("with it: %v %v", resp, err)
	}
}

// TestRecoverPanics: a panic in a call is an Internal error, which Envoy
// counts as a deny, and the process lives on.
func TestRecoverPanics(t *testing.T) {
	var buf strings.Builder
	logger := slog.New(slog.NewTextHandler(&buf, nil))
	resp, err := extauthz.RecoverPanics(logger)(context.Background(), nil, &grpc.UnaryServerInfo{FullMethod: "/envoy.service.auth.v3.Authorization/Check"},
		func(context.Context, any) (any, error) { panic("boom") })
	if resp != nil || status.Code(err) != codes.Internal || !strings.Contains(buf.String(), "boom") {
		t.Errorf("%v %v %s", resp, err, buf.String())
	}
}
