package server

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"

	"github.com/scopegate/scopegate/internal/engine"
	"github.com/scopegate/scopegate/internal/request"
	"github.com/scopegate/scopegate/internal/token"
)

// verifyToken replaces in's access token by what it provably grants: its
// scopes, its subject and its client. A token that fails a check is a deny
// (invalid_token) naming the check; a request that cannot be answered
// (no verifier configured, a subject or client the token contradicts) is
// refused as bad input.
func (s *Server) verifyToken(in *engine.Input) (deny *engine.Decision, bad *request.Error) {
	if s.opts.Tokens == nil {
		return nil, &request.Error{Code: request.CodeInvalidInput, Field: "access_token",
			Message: "this server verifies no access tokens: start it with --token-issuer, --token-audience and --token-jwks, or send granted_scopes"}
	}
	claims, err := token.Verify(s.opts.Tokens, in.AccessToken)
	sum := sha256.Sum256([]byte(in.AccessToken))
	fingerprint := hex.EncodeToString(sum[:]) // names the token in the log without holding it
	in.AccessToken = ""                       // from here on, only what was verified
	if err != nil {
		why := err.Error()
		var te *token.Error
		if errors.As(err, &te) {
			why = "the access token was refused: " + te.Check + ": " + te.Detail
		}
		d := engine.Deny(engine.ReasonInvalidToken, why)
		return &d, nil
	}
	for _, c := range []struct{ field, sent, claim, name string }{
		{"subject", in.Subject, claims.Subject, "sub"},
		{"client_id", in.ClientID, claims.ClientID, "client_id"},
	} {
		if c.sent != "" && c.sent != c.claim {
			return nil, &request.Error{Code: request.CodeInvalidInput, Field: c.field,
				Message: "contradicts the access token's " + c.name + ": leave it out, the token says who is asking"}
		}
	}
	in.GrantedScopes = claims.Scopes
	in.Subject, in.ClientID = claims.Subject, claims.ClientID
	in.Token = claims.All
	in.Claims = map[string]any{"iss": claims.Issuer, "sub": claims.Subject, "client_id": claims.ClientID,
		"jti": claims.JTI, "exp": claims.Expires.Unix(), "scopes": claims.Scopes, "sha256": fingerprint}
	return nil, nil
}
