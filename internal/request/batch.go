package request

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/scopegate/scopegate/internal/engine"
)

// Limits of POST /v1/decide/batch and POST /v1/scopes/normalize.
const (
	// MaxChecks bounds the checks of one batch.
	MaxChecks = 100
	// MaxBatchBodyBytes bounds a batch body: room for MaxChecks routes.
	MaxBatchBodyBytes = 256 << 10
)

// batchBody mirrors the wire format of POST /v1/decide/batch: one token
// (granted and requested scopes, who is asking, context) and the checks to
// decide for it.
type batchBody struct {
	AccessToken     json.RawMessage   `json:"access_token"`
	Subject         string            `json:"subject"`
	ClientID        string            `json:"client_id"`
	GrantedScopes   json.RawMessage   `json:"granted_scopes"`
	Scope           json.RawMessage   `json:"scope"`
	RequestedScopes json.RawMessage   `json:"requested_scopes"`
	Context         map[string]any    `json:"context"`
	Checks          []json.RawMessage `json:"checks"`
}

// checkBody is one entry of checks: an action, or a method and path.
type checkBody struct {
	Action   string    `json:"action"`
	Method   string    `json:"method"`
	Path     string    `json:"path"`
	Resource *Resource `json:"resource"`
}

var (
	batchKnownKeys = map[string]map[string]bool{
		"": {"access_token": true, "subject": true, "client_id": true, "granted_scopes": true, "scope": true, "requested_scopes": true,
			"context": true, "checks": true},
	}
	checkKnownKeys = map[string]map[string]bool{
		"":         {"action": true, "method": true, "path": true, "resource": true},
		"resource": knownKeys["resource"],
	}
)

// readBody reads a whole body, bounded by limit (the caller's
// http.MaxBytesReader gives the same limit).
func readBody(r io.Reader, limit int) ([]byte, *Error) {
	raw, err := io.ReadAll(r)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, &Error{Code: CodeTooLarge, Message: fmt.Sprintf("body is larger than %d bytes", limit)}
		}
		return nil, invalid("", "reading body: %v", err)
	}
	if len(raw) > limit {
		return nil, &Error{Code: CodeTooLarge, Message: fmt.Sprintf("body is larger than %d bytes", limit)}
	}
	if !utf8.Valid(raw) {
		return nil, invalid("", "body is not valid UTF-8")
	}
	return raw, nil
}

// strictDecode decodes raw into v: one JSON value, no unknown fields,
// numbers kept as json.Number.
func strictDecode(raw []byte, v any) *Error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if dec.More() {
		return invalid("", "body holds more than one JSON value")
	}
	return nil
}

// DecodeBatch reads a POST /v1/decide/batch body. It returns one input per
// check, in order, each as /v1/decide would decode it with the shared token
// fields. Errors in a check name it: checks[3].path.
func DecodeBatch(r io.Reader) ([]engine.Input, *Error) {
	raw, e := readBody(r, MaxBatchBodyBytes)
	if e != nil {
		return nil, e
	}
	return DecodeBatchBytes(raw)
}

// DecodeBatchBytes decodes and checks one batch body.
func DecodeBatchBytes(raw []byte) ([]engine.Input, *Error) {
	if len(raw) > MaxBatchBodyBytes {
		return nil, &Error{Code: CodeTooLarge, Message: fmt.Sprintf("body is larger than %d bytes", MaxBatchBodyBytes)}
	}
	if !utf8.Valid(raw) {
		return nil, invalid("", "body is not valid UTF-8")
	}
	if e := checkShapeKnown(raw, batchKnownKeys); e != nil {
		return nil, locateInCheck(raw, e)
	}
	var b batchBody
	if e := strictDecode(raw, &b); e != nil {
		return nil, e
	}
	switch {
	case len(b.Checks) == 0:
		return nil, invalid("checks", "missing or empty: give at least one check ({\"action\": ...} or {\"method\": ..., \"path\": ...})")
	case len(b.Checks) > MaxChecks:
		return nil, invalid("checks", "more than %d checks", MaxChecks)
	}
	shared := body{
		AccessToken: b.AccessToken, Subject: b.Subject, ClientID: b.ClientID,
		GrantedScopes: b.GrantedScopes, Scope: b.Scope, RequestedScopes: b.RequestedScopes,
		Context: b.Context,
	}
	out := make([]engine.Input, len(b.Checks))
	for i, rawCheck := range b.Checks {
		prefix := fmt.Sprintf("checks[%d]", i)
		if t := bytes.TrimSpace(rawCheck); len(t) == 0 || t[0] != '{' {
			return nil, invalid(prefix, "must be an object: {\"action\": ...} or {\"method\": ..., \"path\": ...}")
		}
		if e := checkShapeKnown(rawCheck, checkKnownKeys); e != nil {
			return nil, under(prefix, e)
		}
		var c checkBody
		if e := strictDecode(rawCheck, &c); e != nil {
			return nil, under(prefix, e)
		}
		one := shared
		one.Action, one.Method, one.Path, one.Resource = c.Action, c.Method, c.Path, c.Resource
		in, e := one.check()
		if e != nil {
			if isCheckField(e.Field) {
				return nil, under(prefix, e)
			}
			return nil, e // a shared field: the same for every check
		}
		out[i] = in
	}
	return out, nil
}

// locateInCheck turns a shape error inside checks ("checks[].action: key
// given twice") into one naming the check ("checks[2].action"), when
// checking each check on its own finds it.
func locateInCheck(raw []byte, e *Error) *Error {
	if !strings.HasPrefix(e.Field, "checks[]") {
		return e
	}
	var b batchBody
	if strictDecode(raw, &b) != nil {
		return e
	}
	for i, c := range b.Checks {
		if ce := checkShapeKnown(c, checkKnownKeys); ce != nil {
			return under(fmt.Sprintf("checks[%d]", i), ce)
		}
	}
	return e
}

// isCheckField reports whether a field of body comes from one check.
func isCheckField(f string) bool {
	return f == "action" || f == "method" || f == "path" || f == "resource" || strings.HasPrefix(f, "resource.")
}

// under moves an error into a check: "path" becomes "checks[3].path".
func under(prefix string, e *Error) *Error {
	out := *e
	switch {
	case e.Field == "" || e.Field == "(body)":
		out.Field = prefix
	default:
		out.Field = prefix + "." + e.Field
	}
	return &out
}

// scopeListBody mirrors POST /v1/scopes/normalize.
type scopeListBody struct {
	Scopes json.RawMessage `json:"scopes"`
}

var scopeListKnownKeys = map[string]map[string]bool{"": {"scopes": true}}

// DecodeScopeList reads a {"scopes": [...] | "a b"} body: a requested
// scope list in either form /v1/decide accepts. [] and "" are valid (no
// scopes: the catalog's default applies); a missing or null field is not.
func DecodeScopeList(r io.Reader) ([]string, *Error) {
	raw, e := readBody(r, MaxBodyBytes)
	if e != nil {
		return nil, e
	}
	return DecodeScopeListBytes(raw)
}

// DecodeScopeListBytes decodes and checks one scope-list body.
func DecodeScopeListBytes(raw []byte) ([]string, *Error) {
	if len(raw) > MaxBodyBytes {
		return nil, &Error{Code: CodeTooLarge, Message: fmt.Sprintf("body is larger than %d bytes", MaxBodyBytes)}
	}
	if !utf8.Valid(raw) {
		return nil, invalid("", "body is not valid UTF-8")
	}
	if e := checkShapeKnown(raw, scopeListKnownKeys); e != nil {
		return nil, e
	}
	var b scopeListBody
	if e := strictDecode(raw, &b); e != nil {
		return nil, e
	}
	scopes, e := parseScopes("scopes", b.Scopes)
	if e != nil {
		return nil, e
	}
	if scopes == nil {
		return nil, invalid("scopes", "missing: give a list of scopes or one space-separated string")
	}
	return scopes, nil
}
