package token

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"

	"github.com/scopegate/scopegate/internal/engine"
	"github.com/scopegate/scopegate/internal/request"
)

// Resolve replaces in's access token by what it provably grants: its
// scopes, subject and client (what the policy decides on), every claim as
// input.token, and for the decision log the claims that matter and a
// SHA-256 fingerprint of the token. A token that fails a check is a deny
// (invalid_token) naming the check; a subject or client_id the request
// gives that the token contradicts is bad input.
func (v *Verifier) Resolve(ctx context.Context, in *engine.Input) (deny *engine.Decision, bad *request.Error) {
	sum := sha256.Sum256([]byte(in.AccessToken))
	claims, err := v.verify(ctx, in.AccessToken, sum)
	in.AccessToken = "" // from here on, only what was verified
	if errors.Is(err, ErrUnavailable) {
		d := engine.Deny(engine.ReasonTokenUnavailable, err.Error()+"; denied")
		d.Remedy = "retry later; the operator should check that scopegate reaches the issuer's keys or introspection endpoint"
		return &d, nil
	}
	if err != nil {
		why := err.Error()
		var te *Error
		if errors.As(err, &te) {
			why = "the access token was refused: " + te.Check + ": " + te.Detail
		}
		d := engine.Deny(engine.ReasonInvalidToken, why)
		return &d, nil
	}
	for _, f := range []struct{ field, sent, claim, name string }{
		{"subject", in.Subject, claims.Subject, "sub"},
		{"client_id", in.ClientID, claims.ClientID, "client_id"},
	} {
		if f.sent != "" && f.sent != f.claim {
			return nil, &request.Error{Code: request.CodeInvalidInput, Field: f.field,
				Message: "contradicts the access token's " + f.name + ": leave it out, the token says who is asking"}
		}
	}
	in.GrantedScopes = claims.Scopes
	in.Subject, in.ClientID = claims.Subject, claims.ClientID
	in.Token = claims.All
	in.Claims = map[string]any{"iss": claims.Issuer, "sub": claims.Subject, "client_id": claims.ClientID,
		"jti": claims.JTI, "scopes": claims.Scopes, "sha256": hex.EncodeToString(sum[:])}
	if !claims.Expires.IsZero() { // an introspection answer need not say
		in.Claims["exp"] = claims.Expires.Unix()
	}
	return nil, nil
}

// Single is a Verifier of c's tokens alone.
func Single(c *Config) *Verifier { return &Verifier{byIssuer: map[string]*Config{c.Issuer: c}} }
