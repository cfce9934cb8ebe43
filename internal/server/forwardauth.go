package server

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/scopegate/scopegate/internal/engine"
	"github.com/scopegate/scopegate/internal/forwardauth"
	"github.com/scopegate/scopegate/internal/request"
)

// handleForwardAuth answers a gateway's forward-auth subrequest (any
// method): the original route from the forwarded headers (or, from Envoy's
// HTTP ext_authz, the request's own method and its path after the
// endpoint's), the end user's token from Authorization, decided and logged
// as /v1/decide would, and answered with the status and headers the
// gateway acts on.
func (s *Server) handleForwardAuth(w http.ResponseWriter, r *http.Request) {
	start := s.opts.Now()
	var fr forwardauth.Request
	var bad *request.Error
	if rest, prefixed := strings.CutPrefix(r.URL.EscapedPath(), forwardauth.Path); prefixed && rest != "" {
		fr, bad = forwardauth.ReadPrefixed(r.Method, rest, r.Header) // Envoy's HTTP ext_authz
	} else {
		fr, bad = forwardauth.Read(r.Header)
	}
	if bad != nil {
		s.reject(w, r, uuid.NewString(), start, http.StatusBadRequest, bad)
		return
	}
	a := newAnswer()
	resp, in := s.forwarded(r, start, fr, a)
	for k, v := range forwardauth.Headers(resp.DecisionID, &resp.Decision, &in, s.opts.GatewayDryRun) {
		w.Header()[k] = v
	}
	status := forwardauth.Status(&resp.Decision)
	if s.opts.GatewayDryRun {
		status = http.StatusOK
	}
	writeDecisionStatus(w, status, &resp, a)
	a.recycle()
}

// CheckForwarded decides a forwarded request for a gateway adapter other
// than HTTP (Envoy's gRPC ext_authz): r carries the call's context, with
// its authenticated caller (auth.WithCaller), and the peer as RemoteAddr.
func (s *Server) CheckForwarded(r *http.Request, fr forwardauth.Request) forwardauth.Outcome {
	a := newAnswer()
	defer a.recycle()
	resp, in := s.forwarded(r, s.opts.Now(), fr, a)
	var body []byte
	if a.err == nil {
		body = appendDecision(nil, &resp, a)
	} else if b, err := json.Marshal(resp); err == nil {
		body = append(b, '\n')
	}
	return forwardauth.Outcome{ID: resp.DecisionID, Decision: resp.Decision, Input: in, Body: body, DryRun: s.opts.GatewayDryRun}
}

// RejectForwarded logs a forwarded request a gateway adapter refused as
// bad input (400), as /v1/forward-auth logs its own, and returns its id.
func (s *Server) RejectForwarded(r *http.Request, e *request.Error) string {
	id := uuid.NewString()
	s.recordReject(r, id, s.opts.Now(), e)
	return id
}

// forwarded decides fr, read from a gateway, and logs it: the input as
// decided (after its token was verified) comes back with the answer.
func (s *Server) forwarded(r *http.Request, start time.Time, fr forwardauth.Request, a *answer) (response, engine.Input) {
	id := uuid.NewString()
	in := engine.Input{Method: fr.Method, Path: fr.Path, GrantedScopes: []string{}}
	var pre *engine.Decision
	switch {
	case fr.Token == "":
		d := engine.Deny(engine.ReasonMissingToken, fr.NoToken)
		d.Remedy = "send the end user's access token as Authorization: Bearer <token>"
		pre = &d
	case s.opts.Tokens == nil:
		d := engine.Deny(engine.ReasonTokenUnavailable, "this server verifies no access tokens: start it with --token-issuer, --token-audience and --token-jwks, or --token-introspection-url; denied")
		pre = &d
	default:
		in.AccessToken = fr.Token
		// A forwarded request names no subject or client of its own, so
		// Resolve has nothing to refuse as bad input: every outcome is a
		// decision.
		pre, _ = s.opts.Tokens.Resolve(r.Context(), &in)
	}
	if pre != nil && pre.Reason == engine.ReasonInvalidToken && pre.Remedy == "" {
		pre.Remedy = "get a new access token from the authorization server"
	}
	resp := s.decide(r, s.engine.Load(), id, start, in, pre, engine.Options{}, a)
	if s.opts.GatewayDryRun && !resp.Allow {
		s.metrics.dryRunDenies.Inc()
	}
	return resp, in
}
