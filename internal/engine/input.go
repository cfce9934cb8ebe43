package engine

import (
	"fmt"

	"github.com/open-policy-agent/opa/v1/ast"
)

// Input is one decision request as the policy sees it. Scopes are already
// split and checked for form; whether they exist is the policy's call.
type Input struct {
	// AccessToken is the caller's token, when the request gave one instead
	// of a scope list: the server verifies it, fills GrantedScopes, Subject
	// and ClientID from its claims and clears it. It never reaches the
	// policy or the decision log.
	AccessToken string
	// Claims is what the decision log records of a verified access token
	// (issuer, subject, client, jti, expiry, scopes, a SHA-256 fingerprint
	// of the token): who asked and with what, never the token. The policy
	// does not see it.
	Claims map[string]any

	Subject         string
	ClientID        string
	GrantedScopes   []string
	RequestedScopes []string
	Action          string
	Method          string
	Path            string
	Resource        map[string]any
	Context         map[string]any
	// Token holds every claim of a verified access token, for the policy
	// (input.token: acr, auth_time, a tenant claim). The decision log masks
	// it as it masks any member named token; input.claims says what counts.
	Token map[string]any
}

// Value builds the policy input directly as an AST value, skipping the JSON
// round trip OPA would otherwise do on every evaluation.
func (in Input) Value() (ast.Value, error) {
	obj := ast.NewObject()
	str := func(k, v string) {
		if v != "" {
			obj.Insert(ast.StringTerm(k), ast.StringTerm(v))
		}
	}
	strs := func(k string, vs []string) {
		terms := make([]*ast.Term, len(vs))
		for i, s := range vs {
			terms[i] = ast.StringTerm(s)
		}
		obj.Insert(ast.StringTerm(k), ast.ArrayTerm(terms...))
	}
	str("subject", in.Subject)
	str("client_id", in.ClientID)
	strs("granted_scopes", in.GrantedScopes)
	if in.RequestedScopes != nil {
		strs("requested_scopes", in.RequestedScopes)
	}
	str("action", in.Action)
	str("method", in.Method)
	str("path", in.Path)
	for k, v := range map[string]map[string]any{"resource": in.Resource, "context": in.Context, "token": in.Token} {
		if v == nil {
			continue
		}
		val, err := ast.InterfaceToValue(v)
		if err != nil {
			return nil, fmt.Errorf("input %s: %w", k, err)
		}
		obj.Insert(ast.StringTerm(k), ast.NewTerm(val))
	}
	return obj, nil
}

// Map is the input as plain JSON-able values: the decision log's "input".
// The server writes the same members without building the map (its
// logInput, held to Map by a test).
func (in Input) Map() map[string]any {
	m := make(map[string]any, 10)
	m["granted_scopes"] = in.GrantedScopes
	for _, kv := range [...]struct{ k, v string }{{"subject", in.Subject}, {"client_id", in.ClientID}, {"action", in.Action}, {"method", in.Method}, {"path", in.Path}} {
		if kv.v != "" {
			m[kv.k] = kv.v
		}
	}
	if in.RequestedScopes != nil {
		m["requested_scopes"] = in.RequestedScopes
	}
	if in.Resource != nil {
		m["resource"] = in.Resource
	}
	if in.Context != nil {
		m["context"] = in.Context
	}
	if in.Claims != nil {
		m["claims"] = in.Claims
	}
	if in.Token != nil {
		m["token"] = in.Token
	}
	return m
}
