// Package extauthz is Envoy's external authorization service (ext_authz
// v3 over gRPC, envoy.service.auth.v3.Authorization/Check) on Envoy's own
// generated types: the request's method, path and Authorization header in,
// OK with the upstream headers or Denied with 401/403 and the challenge
// out, decided by the same engine, policy and log as /v1/forward-auth.
package extauthz

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	grpcstatus "google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/scopegate/scopegate/internal/auth"
	"github.com/scopegate/scopegate/internal/engine"
	"github.com/scopegate/scopegate/internal/forwardauth"
	"github.com/scopegate/scopegate/internal/request"
)

// The dynamic_metadata keys: Envoy files them under the ext_authz filter's
// name, for a later filter or the access log to read:
// %DYNAMIC_METADATA(envoy.filters.http.ext_authz:scopegate_reason)%.
const (
	MetaDecisionID = "scopegate_decision_id"
	MetaReason     = "scopegate_reason"
	MetaAllow      = "scopegate_allow"
	MetaDryRun     = "scopegate_dry_run"
)

// GatewayAuthMetadata is the gRPC metadata key Envoy sends its own
// credential in when caller authentication is on (grpc_service's
// initial_metadata), as X-Scopegate-Authorization is over HTTP.
var GatewayAuthMetadata = strings.ToLower(forwardauth.GatewayAuthHeader)

// Decider decides a forwarded request; server.Server is one.
type Decider interface {
	CheckForwarded(r *http.Request, fr forwardauth.Request) forwardauth.Outcome
	// RejectForwarded logs a forwarded request refused as bad input and
	// returns the record's decision id.
	RejectForwarded(r *http.Request, e *request.Error) string
}

// Service implements authv3.AuthorizationServer.
type Service struct {
	authv3.UnimplementedAuthorizationServer
	decider Decider
	authn   *auth.Authenticator // nil: auth off
}

// New serves decider's decisions; authn (nil: off) checks Envoy's own
// credential: a client certificate, or GatewayAuthMetadata.
func New(decider Decider, authn *auth.Authenticator) *Service {
	return &Service{decider: decider, authn: authn}
}

// Register adds the service to g.
func (s *Service) Register(g *grpc.Server) { authv3.RegisterAuthorizationServer(g, s) }

// Check answers one ext_authz request. A call whose caller is not let in
// is a gRPC error, which Envoy treats as a deny unless failure_mode_allow
// is set (the README's configuration leaves it off).
func (s *Service) Check(ctx context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	r, err := s.caller(ctx)
	if err != nil {
		return nil, err
	}
	fr, bad := read(req)
	if bad != nil {
		// Nothing a policy can be asked about: Envoy sent no HTTP request,
		// or one whose route is ambiguous. Refused and logged, with the
		// reason, even in dry-run: the gateway is misconfigured.
		id := s.decider.RejectForwarded(r, bad)
		body, _ := json.Marshal(map[string]any{"error": bad, "decision_id": id})
		h := http.Header{}
		h.Set(forwardauth.HeaderDecisionID, id)
		h.Set(forwardauth.HeaderReason, engine.ReasonInvalidInput)
		return denied(http.StatusBadRequest, codes.InvalidArgument, id, engine.ReasonInvalidInput, h, body), nil
	}
	out := s.decider.CheckForwarded(r, fr)
	h := forwardauth.Headers(out.ID, &out.Decision, &out.Input, out.DryRun)
	if out.Let() {
		meta := metadataFor(out.ID, &out.Decision, out.DryRun)
		return &authv3.CheckResponse{
			Status:          &rpcstatus.Status{Code: int32(codes.OK)},
			DynamicMetadata: meta,
			HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{
				Headers: headerOptions(h, forwardauth.HeaderDecisionID, forwardauth.HeaderSubject, forwardauth.HeaderClientID, forwardauth.HeaderScopes, forwardauth.HeaderDryRun),
			}},
		}, nil
	}
	status := forwardauth.Status(&out.Decision)
	code := codes.PermissionDenied
	switch status {
	case http.StatusUnauthorized:
		code = codes.Unauthenticated
	case http.StatusServiceUnavailable:
		code = codes.Unavailable
	}
	return denied(status, code, out.ID, out.Decision.Reason, h, out.Body), nil
}

// caller authenticates Envoy itself and returns the request the decision
// is made and logged under: the call's context with its caller, and the
// peer's address.
func (s *Service) caller(ctx context.Context) (*http.Request, error) {
	r := (&http.Request{Header: http.Header{}}).WithContext(ctx)
	if p, ok := peer.FromContext(ctx); ok {
		r.RemoteAddr = p.Addr.String()
		if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok {
			r.TLS = &ti.State
		}
	}
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get(GatewayAuthMetadata); len(v) == 1 {
			r.Header.Set(forwardauth.GatewayAuthHeader, v[0])
		}
	}
	a := s.authn
	if a == nil {
		a = &auth.Authenticator{}
	}
	c := a.AuthenticateFrom(r, forwardauth.GatewayAuthHeader)
	if c.Role < auth.RoleDecide {
		return nil, grpcstatus.Error(codes.Unauthenticated, "the gateway must authenticate with a client certificate or "+GatewayAuthMetadata+" metadata: Bearer <its token>")
	}
	return r.WithContext(auth.WithCaller(ctx, c)), nil
}

// read takes what a forwarded request needs from Envoy's attributes: the
// route Envoy routed and the Authorization header, nothing a client could
// add under another name.
func read(req *authv3.CheckRequest) (forwardauth.Request, *request.Error) {
	h := req.GetAttributes().GetRequest().GetHttp()
	if h == nil {
		return forwardauth.Request{}, &request.Error{Code: request.CodeInvalidInput, Field: "attributes.request.http", Message: "missing: ext_authz sent no HTTP request"}
	}
	fwd := http.Header{}
	fwd.Set("X-Forwarded-Method", h.GetMethod())
	fwd.Set("X-Forwarded-Uri", h.GetPath())
	if v, ok := h.GetHeaders()["authorization"]; ok {
		fwd.Set("Authorization", v)
	}
	// With encode_raw_headers Envoy sends header_map instead.
	for _, hv := range h.GetHeaderMap().GetHeaders() {
		if strings.EqualFold(hv.GetKey(), "authorization") {
			v := hv.GetValue()
			if v == "" {
				v = string(hv.GetRawValue())
			}
			fwd.Add("Authorization", v)
		}
	}
	fr, bad := forwardauth.Read(fwd)
	if bad != nil {
		switch bad.Field {
		case "X-Forwarded-Method":
			bad.Field = "attributes.request.http.method"
		case "X-Forwarded-Uri":
			bad.Field = "attributes.request.http.path"
		}
	}
	return fr, bad
}

func denied(status int, code codes.Code, id, reason string, h http.Header, body []byte) *authv3.CheckResponse {
	h.Set("Content-Type", "application/json")
	return &authv3.CheckResponse{
		Status:          &rpcstatus.Status{Code: int32(code), Message: reason},
		DynamicMetadata: metadataFor(id, &engine.Decision{Reason: reason}, false),
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
			Status:  &typev3.HttpStatus{Code: typev3.StatusCode(status)},
			Headers: headerOptions(h, "WWW-Authenticate", forwardauth.HeaderDecisionID, forwardauth.HeaderReason, "Content-Type"),
			Body:    string(body),
		}},
	}
}

func metadataFor(id string, d *engine.Decision, dryRun bool) *structpb.Struct {
	return &structpb.Struct{Fields: map[string]*structpb.Value{
		MetaDecisionID: structpb.NewStringValue(id),
		MetaReason:     structpb.NewStringValue(d.Reason),
		MetaAllow:      structpb.NewBoolValue(d.Allow),
		MetaDryRun:     structpb.NewBoolValue(dryRun && !d.Allow),
	}}
}

// headerOptions are h's values of names, each replacing any header of the
// same name the client sent.
func headerOptions(h http.Header, names ...string) []*corev3.HeaderValueOption {
	var out []*corev3.HeaderValueOption
	for _, n := range names {
		v, ok := h[http.CanonicalHeaderKey(n)]
		if !ok || len(v) == 0 {
			continue
		}
		out = append(out, &corev3.HeaderValueOption{
			Header:       &corev3.HeaderValue{Key: strings.ToLower(n), Value: v[0]},
			AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
		})
	}
	return out
}

// RecoverPanics turns a panic in a call into a logged Internal error:
// grpc-go does not recover handler panics, so one would end the process
// (and every decision with it). Envoy treats the error as a deny unless
// failure_mode_allow is set.
func RecoverPanics(logger *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
		defer func() {
			if v := recover(); v != nil {
				logger.Error("panic serving gRPC; denied", "method", info.FullMethod, "panic", v, "stack", string(debug.Stack()))
				resp, err = nil, grpcstatus.Error(codes.Internal, "internal error; denied")
			}
		}()
		return handler(ctx, req)
	}
}
