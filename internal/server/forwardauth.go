package server

import (
	"net/http"

	"github.com/google/uuid"

	"github.com/scopegate/scopegate/internal/engine"
	"github.com/scopegate/scopegate/internal/forwardauth"
)

// handleForwardAuth answers a gateway's forward-auth subrequest (any
// method): the original route from the forwarded headers, the end user's
// token from Authorization, decided and logged as /v1/decide would, and
// answered with the status and headers the gateway acts on.
func (s *Server) handleForwardAuth(w http.ResponseWriter, r *http.Request) {
	start := s.opts.Now()
	id := uuid.NewString()
	fr, bad := forwardauth.Read(r.Header)
	if bad != nil {
		s.reject(w, r, id, start, http.StatusBadRequest, bad)
		return
	}
	in := engine.Input{Method: fr.Method, Path: fr.Path, GrantedScopes: []string{}}
	var pre *engine.Decision
	switch {
	case fr.Token == "":
		d := engine.Deny(engine.ReasonMissingToken, fr.NoToken)
		d.Remedy = "send the end user's access token as Authorization: Bearer <token>"
		pre = &d
	case s.opts.Tokens == nil:
		d := engine.Deny(engine.ReasonTokenUnavailable, "this server verifies no access tokens: start it with --token-issuer, --token-audience and --token-jwks; denied")
		pre = &d
	default:
		in.AccessToken = fr.Token
		// A forwarded request names no subject or client of its own, so
		// Resolve has nothing to refuse as bad input: every outcome is a
		// decision.
		pre, _ = s.opts.Tokens.Resolve(&in)
	}
	if pre != nil && pre.Reason == engine.ReasonInvalidToken && pre.Remedy == "" {
		pre.Remedy = "get a new access token from the authorization server"
	}
	a := newAnswer()
	resp := s.decide(r, s.engine.Load(), id, start, in, pre, engine.Options{}, a)
	for k, v := range forwardauth.Headers(id, &resp.Decision, &in) {
		w.Header()[k] = v
	}
	writeDecisionStatus(w, forwardauth.Status(&resp.Decision), &resp, a)
	a.recycle()
}
