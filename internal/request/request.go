// Package request decodes and checks a /v1/decide body. It is strict: an
// unknown field, a wrong type or a malformed scope string is an error naming
// the field, never a guess.
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

// Limits on what a request may carry.
const (
	MaxBodyBytes = 64 << 10
	MaxScopes    = 256
	MaxScopeLen  = 256
	MaxFieldLen  = 256
	MaxPathLen   = 2048
	// MaxTokenBytes bounds access_token (a JWT access token is a few KiB).
	MaxTokenBytes  = 8 << 10
	maxObjectDepth = 8
)

// Error is a client error: which field, and what is wrong with it.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

func (e *Error) Error() string {
	if e.Field == "" {
		return e.Message
	}
	return e.Field + ": " + e.Message
}

// Error codes.
const (
	CodeInvalidInput = "invalid_input"
	CodeTooLarge     = "body_too_large"
)

func invalid(field, format string, args ...any) *Error {
	return &Error{Code: CodeInvalidInput, Field: field, Message: fmt.Sprintf(format, args...)}
}

// Resource is the object the action is on, for policies that look at it.
type Resource struct {
	Type       string         `json:"type"`
	ID         string         `json:"id"`
	Owner      string         `json:"owner"`
	Attributes map[string]any `json:"attributes"`
}

// body mirrors the wire format of POST /v1/decide.
type body struct {
	AccessToken     json.RawMessage `json:"access_token"`
	Subject         string          `json:"subject"`
	ClientID        string          `json:"client_id"`
	GrantedScopes   json.RawMessage `json:"granted_scopes"`
	Scope           json.RawMessage `json:"scope"`
	RequestedScopes json.RawMessage `json:"requested_scopes"`
	Action          string          `json:"action"`
	Method          string          `json:"method"`
	Path            string          `json:"path"`
	Resource        *Resource       `json:"resource"`
	Context         map[string]any  `json:"context"`
}

// Decode reads one decide request from r. Callers bound r's size (an
// http.MaxBytesReader); a *http.MaxBytesError from it becomes body_too_large.
func Decode(r io.Reader) (engine.Input, *Error) {
	raw, err := io.ReadAll(r)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return engine.Input{}, &Error{Code: CodeTooLarge, Message: fmt.Sprintf("body is larger than %d bytes", MaxBodyBytes)}
		}
		return engine.Input{}, invalid("", "reading body: %v", err)
	}
	return DecodeBytes(raw)
}

// DecodeBytes decodes and checks one request body.
func DecodeBytes(raw []byte) (engine.Input, *Error) {
	if len(raw) > MaxBodyBytes {
		return engine.Input{}, &Error{Code: CodeTooLarge, Message: fmt.Sprintf("body is larger than %d bytes", MaxBodyBytes)}
	}
	if !utf8.Valid(raw) {
		return engine.Input{}, invalid("", "body is not valid UTF-8")
	}
	if e := checkShape(raw); e != nil {
		return engine.Input{}, e
	}
	var b body
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	if err := dec.Decode(&b); err != nil {
		return engine.Input{}, jsonError(err)
	}
	if dec.More() {
		return engine.Input{}, invalid("", "body holds more than one JSON value")
	}
	return b.check()
}

func (b *body) check() (engine.Input, *Error) {
	in := engine.Input{
		Subject:  b.Subject,
		ClientID: b.ClientID,
		Action:   b.Action,
		Method:   strings.ToUpper(b.Method),
		Path:     b.Path,
		Context:  b.Context,
	}
	for field, v := range map[string]string{"subject": b.Subject, "client_id": b.ClientID, "action": b.Action} {
		if e := checkText(field, v, MaxFieldLen); e != nil {
			return engine.Input{}, e
		}
	}

	granted, e := parseScopes("granted_scopes", b.GrantedScopes)
	if e != nil {
		return engine.Input{}, e
	}
	scope, e := parseScopes("scope", b.Scope)
	if e != nil {
		return engine.Input{}, e
	}
	if len(b.AccessToken) > 0 {
		var tok string
		if json.Unmarshal(b.AccessToken, &tok) != nil {
			return engine.Input{}, invalid("access_token", "must be a string: the token as the client sent it")
		}
		switch {
		case tok == "":
			return engine.Input{}, invalid("access_token", "empty")
		case len(tok) > MaxTokenBytes:
			return engine.Input{}, invalid("access_token", "longer than %d bytes", MaxTokenBytes)
		case granted != nil || scope != nil:
			return engine.Input{}, invalid("access_token", "give access_token or granted_scopes/scope, not both: the token's scopes are what it grants")
		}
		in.AccessToken = tok
	}
	switch {
	case granted != nil && scope != nil:
		return engine.Input{}, invalid("scope", "give granted_scopes or scope, not both")
	case granted != nil:
		in.GrantedScopes = granted
	case scope != nil:
		in.GrantedScopes = scope
	default:
		in.GrantedScopes = []string{}
	}
	if in.RequestedScopes, e = parseScopes("requested_scopes", b.RequestedScopes); e != nil {
		return engine.Input{}, e
	}

	switch {
	case b.Action != "" && (b.Method != "" || b.Path != ""):
		return engine.Input{}, invalid("action", "give an action or a method and path, not both")
	case b.Action == "" && b.Method == "" && b.Path == "":
		return engine.Input{}, invalid("action", "missing: give an action, or a method and path")
	case b.Action == "":
		if e := checkMethod(b.Method); e != nil {
			return engine.Input{}, e
		}
		if e := checkPath(b.Path); e != nil {
			return engine.Input{}, e
		}
	}

	if b.Resource != nil {
		r := b.Resource
		for field, v := range map[string]string{"resource.type": r.Type, "resource.id": r.ID, "resource.owner": r.Owner} {
			if e := checkText(field, v, MaxFieldLen); e != nil {
				return engine.Input{}, e
			}
		}
		in.Resource = map[string]any{}
		for k, v := range map[string]string{"type": r.Type, "id": r.ID, "owner": r.Owner} {
			if v != "" {
				in.Resource[k] = v
			}
		}
		if r.Attributes != nil {
			in.Resource["attributes"] = r.Attributes
		}
	}
	return in, nil
}

func checkText(field, v string, max int) *Error {
	if len(v) > max {
		return invalid(field, "longer than %d bytes", max)
	}
	for _, r := range v {
		if r < 0x20 || r == 0x7f {
			return invalid(field, "contains a control character")
		}
	}
	return nil
}

func checkMethod(m string) *Error {
	if m == "" {
		return invalid("method", "missing: a route needs both method and path")
	}
	if len(m) > 16 {
		return invalid("method", "longer than 16 bytes")
	}
	for _, r := range m {
		if (r < 'A' || r > 'Z') && (r < 'a' || r > 'z') {
			return invalid("method", "must be letters only, like GET or POST")
		}
	}
	return nil
}

// checkPath accepts an absolute, already-normalised path. Dot segments and
// empty segments are refused: matching "/a/../b" against routes would be a
// guess about how the calling service resolves it.
func checkPath(p string) *Error {
	switch {
	case p == "":
		return invalid("path", "missing: a route needs both method and path")
	case len(p) > MaxPathLen:
		return invalid("path", "longer than %d bytes", MaxPathLen)
	case !strings.HasPrefix(p, "/"):
		return invalid("path", "must start with /")
	case strings.ContainsAny(p, "?#"):
		return invalid("path", "must not carry a query or fragment")
	}
	if e := checkText("path", p, MaxPathLen); e != nil {
		return e
	}
	segs := strings.Split(strings.TrimSuffix(p[1:], "/"), "/")
	if p == "/" {
		return nil
	}
	for _, s := range segs {
		switch s {
		case "":
			return invalid("path", "has an empty segment (//)")
		case ".", "..":
			return invalid("path", "has a dot segment; send the resolved path")
		}
	}
	return nil
}

// jsonError turns encoding/json's errors into ones naming the field.
func jsonError(err error) *Error {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		return invalid("", "malformed JSON at byte %d: %v", syntax.Offset, syntax)
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			field = "(body)"
		}
		return invalid(field, "must be %s, not %s", jsonKind(typ.Type.Kind().String()), typ.Value)
	case errors.Is(err, io.EOF):
		return invalid("", "empty body: want a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return invalid("", "truncated JSON")
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		name = strings.Trim(name, `"`)
		return invalid(name, "unknown field")
	}
	return invalid("", "%v", err)
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "map", "struct", "ptr":
		return "an object"
	case "slice":
		return "an array"
	}
	return goKind
}

// checkShape walks the raw JSON once to bound nesting and duplicate keys,
// which encoding/json would otherwise accept silently (last key wins).
func checkShape(raw []byte) *Error { return checkShapeKnown(raw, knownKeys) }

// checkShapeKnown is checkShape for a body whose closed objects (by path)
// list their fields in known.
func checkShapeKnown(raw []byte, known map[string]map[string]bool) *Error {
	if e, decided := scanShape(raw, known); decided {
		return e
	}
	return checkShapeTokens(raw, known)
}

// checkShapeTokens is the reference implementation of checkShapeKnown, on
// encoding/json's tokens: slower (it allocates per token), but it unescapes
// keys, so it decides whatever scanShape cannot.
func checkShapeTokens(raw []byte, known map[string]map[string]bool) *Error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	type frame struct {
		object bool
		keys   map[string]bool
		path   string
		expect bool // object: next string token is a key
		last   string
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return nil // syntax errors are reported by the real decode
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.object && top.expect {
			if d, ok := tok.(json.Delim); ok && d == '}' {
				stack = stack[:len(stack)-1]
				if len(stack) > 0 {
					stack[len(stack)-1].expect = stack[len(stack)-1].object
				}
				continue
			}
			key, _ := tok.(string)
			if top.keys[key] {
				return invalid(joinPath(top.path, key), "key given twice")
			}
			if fields, closed := known[top.path]; closed && len(stack) <= 2 && !fields[key] {
				return invalid(joinPath(top.path, key), "unknown field")
			}
			top.keys[key] = true
			top.last = key
			top.expect = false
			continue
		}
		childPath := ""
		if top != nil {
			if top.object {
				childPath = joinPath(top.path, top.last)
			} else {
				childPath = top.path + "[]"
			}
		}
		if d, ok := tok.(json.Delim); ok {
			switch d {
			case '{', '[':
				if len(stack) >= maxObjectDepth {
					return invalid(childPath, "nested deeper than %d levels", maxObjectDepth)
				}
				stack = append(stack, &frame{object: d == '{', keys: map[string]bool{}, path: childPath, expect: d == '{'})
				continue
			case ']':
				stack = stack[:len(stack)-1]
			}
		}
		if len(stack) > 0 {
			stack[len(stack)-1].expect = stack[len(stack)-1].object
		}
	}
}

// knownKeys lists the fields of the closed objects of the request: the body
// itself and resource. (context and resource.attributes are open.)
var knownKeys = map[string]map[string]bool{
	"": {"access_token": true, "subject": true, "client_id": true, "granted_scopes": true, "scope": true, "requested_scopes": true,
		"action": true, "method": true, "path": true, "resource": true, "context": true},
	"resource": {"type": true, "id": true, "owner": true, "attributes": true},
}

func joinPath(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

// CheckRoute accepts what /v1/decide accepts as method and path; errors
// name the fields "method" and "path". The gateway adapters check the
// route they were forwarded with it.
func CheckRoute(method, path string) *Error {
	if e := checkMethod(method); e != nil {
		return e
	}
	return checkPath(path)
}
