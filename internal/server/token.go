package server

import (
	"context"

	"github.com/scopegate/scopegate/internal/engine"
	"github.com/scopegate/scopegate/internal/request"
)

// verifyToken replaces in's access token by what it provably grants: its
// scopes, its subject and its client. A token that fails a check is a deny
// (invalid_token) naming the check; a request that cannot be answered
// (no verifier configured, a subject or client the token contradicts) is
// refused as bad input.
func (s *Server) verifyToken(ctx context.Context, in *engine.Input) (deny *engine.Decision, bad *request.Error) {
	if s.opts.Tokens == nil {
		return nil, &request.Error{Code: request.CodeInvalidInput, Field: "access_token",
			Message: "this server verifies no access tokens: start it with --token-issuer, --token-audience and --token-jwks (JWTs) or --token-introspection-url (opaque tokens), or send granted_scopes"}
	}
	return s.opts.Tokens.Resolve(ctx, in)
}
