// Package forwardauth adapts a gateway's forward-auth subrequest (nginx
// auth_request, Caddy forward_auth, Traefik ForwardAuth, Envoy's HTTP
// ext_authz) to a decision input, and a decision to the answer those
// gateways understand: 200 lets the request through, 401 and 403 refuse it.
package forwardauth

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/scopegate/scopegate/internal/engine"
	"github.com/scopegate/scopegate/internal/request"
)

// Path is the endpoint gateways call.
const Path = "/v1/forward-auth"

// GatewayAuthHeader carries the gateway's own credential to scopegate
// when caller authentication is on: on a forwarded request, Authorization
// is the end user's.
const GatewayAuthHeader = "X-Scopegate-Authorization"

// The headers an allow sets for the upstream, and Reason on every answer.
const (
	HeaderDecisionID = "X-Scopegate-Decision-Id"
	HeaderSubject    = "X-Scopegate-Subject"
	HeaderClientID   = "X-Scopegate-Client-Id"
	HeaderScopes     = "X-Scopegate-Scopes"
	HeaderReason     = "X-Scopegate-Reason"
)

// The two header families gateways forward the original request in.
var families = [][2]string{
	{"X-Forwarded-Method", "X-Forwarded-Uri"}, // Traefik, Caddy
	{"X-Original-Method", "X-Original-URI"},   // nginx auth_request (the README's configuration)
}

// Forwarded reports whether h carries a forwarded method header, which a
// browser cannot send to another site without a CORS preflight.
func Forwarded(h http.Header) bool {
	for _, f := range families {
		if len(h.Values(f[0])) > 0 {
			return true
		}
	}
	return false
}

// Request is a forwarded request, read.
type Request struct {
	Method, Path string
	// Token is the bearer token from Authorization; "" when none was sent.
	Token string
	// NoToken says why Token is "" (no Authorization, another scheme).
	NoToken string
}

// Read takes the original method, path and bearer token from a forwarded
// request's headers. A request naming its route ambiguously is refused:
// both header families at once (a client can send the family its gateway
// does not set, and which one wins would decide the route), a header given
// twice, or a path the upstream could resolve differently (dot segments,
// an encoded slash).
func Read(h http.Header) (Request, *request.Error) {
	var fam [2]string
	for _, f := range families {
		if len(h.Values(f[0])) == 0 && len(h.Values(f[1])) == 0 {
			continue
		}
		if fam[0] != "" {
			return Request{}, invalid(f[1], "both X-Forwarded-Method/-Uri and X-Original-Method/-URI were sent: a gateway sets one family, so the other came from the client")
		}
		fam = f
	}
	if fam[0] == "" {
		return Request{}, invalid("X-Forwarded-Uri", "missing: the gateway must forward the original method and URI (X-Forwarded-Method and X-Forwarded-Uri, or X-Original-Method and X-Original-URI)")
	}
	method, e := one(h, fam[0])
	if e != nil {
		return Request{}, e
	}
	uri, e := one(h, fam[1])
	if e != nil {
		return Request{}, e
	}
	return route(method, uri, fam[0], fam[1], h)
}

// ReadPrefixed reads the form Envoy's HTTP ext_authz sends: the original
// request's method, and its path after Path (Envoy's path_prefix). rest is
// that remainder, still percent-encoded (URL.EscapedPath). The route comes
// from the request line alone: forwarded headers alongside it are refused.
func ReadPrefixed(method, rest string, h http.Header) (Request, *request.Error) {
	if Forwarded(h) || len(h.Values(families[0][1])) > 0 || len(h.Values(families[1][1])) > 0 {
		return Request{}, invalid("X-Forwarded-Uri", "sent to "+Path+"/...: the route is the path after "+Path+", so forwarded route headers are not expected")
	}
	return route(method, rest, "method", "path", h)
}

// route reads method, uri (fields name where they came from) and the
// bearer token in h.
func route(method, uri, methodField, uriField string, h http.Header) (Request, *request.Error) {
	path, e := pathOf(uriField, uri)
	if e != nil {
		return Request{}, e
	}
	if e := request.CheckRoute(method, path); e != nil {
		field := methodField
		if e.Field == "path" {
			field = uriField
		}
		return Request{}, invalid(field, "%s", e.Message)
	}
	req := Request{Method: strings.ToUpper(method), Path: path}
	auths := h.Values("Authorization")
	switch {
	case len(auths) == 0:
		req.NoToken = "the request carried no access token: send it as Authorization: Bearer <token>"
	case len(auths) > 1:
		return Request{}, invalid("Authorization", "given twice")
	default:
		scheme, tok, _ := strings.Cut(auths[0], " ")
		tok = strings.TrimSpace(tok)
		if !strings.EqualFold(scheme, "Bearer") || tok == "" {
			req.NoToken = "the Authorization header is not a bearer token: send Authorization: Bearer <token>"
		} else {
			req.Token = tok
		}
	}
	return req, nil
}

// IsPath reports whether p is the forward-auth endpoint, in either form.
func IsPath(p string) bool { return p == Path || strings.HasPrefix(p, Path+"/") }

// pathOf is the decoded path of a forwarded request URI (its query cut
// off). An encoded '/' or '\' is refused: decoded, it would make segments
// the upstream may not see.
func pathOf(field, uri string) (string, *request.Error) {
	if uri == "" {
		return "", invalid(field, "empty")
	}
	if len(uri) > 2*request.MaxPathLen {
		return "", invalid(field, "longer than %d bytes", 2*request.MaxPathLen)
	}
	raw, _, _ := strings.Cut(uri, "?")
	lower := strings.ToLower(raw)
	if strings.Contains(lower, "%2f") || strings.Contains(lower, "%5c") || strings.Contains(raw, `\`) {
		return "", invalid(field, "has an encoded slash or a backslash: the upstream may split it differently")
	}
	p, err := url.PathUnescape(raw)
	if err != nil {
		return "", invalid(field, "bad percent-encoding")
	}
	return p, nil
}

func one(h http.Header, name string) (string, *request.Error) {
	switch v := h.Values(name); len(v) {
	case 0:
		return "", invalid(name, "missing")
	case 1:
		return v[0], nil
	}
	return "", invalid(name, "given twice")
}

func invalid(field, format string, args ...any) *request.Error {
	return &request.Error{Code: request.CodeInvalidInput, Field: field, Message: fmt.Sprintf(format, args...)}
}

// Status is the HTTP status a gateway needs for d: 200 lets the request
// through; 401 asks for a (valid) token; 503 says the token could not be
// checked now; 403 refuses everything else.
func Status(d *engine.Decision) int {
	switch {
	case d.Allow:
		return http.StatusOK
	case d.Reason == engine.ReasonInvalidToken || d.Reason == engine.ReasonMissingToken:
		return http.StatusUnauthorized
	case d.Reason == engine.ReasonTokenUnavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusForbidden
}

// Outcome is a forwarded request's decision, for an adapter to answer.
type Outcome struct {
	ID       string
	Decision engine.Decision
	// Input is the input as decided: after the token was verified.
	Input engine.Input
	// Body is the decision as /v1/forward-auth answers it, in JSON.
	Body []byte
	// DryRun: the gateway lets the request through whatever Decision says.
	DryRun bool
}

// Let reports whether the gateway lets the request through.
func (o *Outcome) Let() bool { return o.Decision.Allow || o.DryRun }

// HeaderDryRun marks an answer that lets a denied request through because
// of --gateway-dry-run.
const HeaderDryRun = "X-Scopegate-Dry-Run"

// Headers are the answer's headers for decision id with d, on in (the
// input as decided: after the token was verified). An answer that lets
// the request through tells the upstream who asked with which scopes;
// every answer carries the decision id and reason; a refusal carries its
// RFC 6750 challenge. The upstream headers are always set, empty when
// unknown, so that a gateway copying them replaces any a client sent.
// dryRun: a deny is let through, marked with X-Scopegate-Dry-Run.
func Headers(id string, d *engine.Decision, in *engine.Input, dryRun bool) http.Header {
	h := http.Header{}
	h.Set(HeaderDecisionID, id)
	h.Set(HeaderReason, d.Reason)
	if !d.Allow && !dryRun {
		h.Set("WWW-Authenticate", d.WWWAuthenticate)
		return h
	}
	if !d.Allow {
		h.Set(HeaderDryRun, "deny")
	}
	h.Set(HeaderSubject, HeaderValue(in.Subject))
	h.Set(HeaderClientID, HeaderValue(in.ClientID))
	h.Set(HeaderScopes, HeaderValue(strings.Join(in.GrantedScopes, " ")))
	return h
}

// HeaderValue makes a claim safe to pass on as a header value: '%' and
// every byte outside printable ASCII are percent-encoded (RFC 3986), so a
// claim cannot end the header or smuggle another, and an upstream that
// wants the original bytes percent-decodes.
func HeaderValue(s string) string {
	clean := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '%' {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e || c == '%' {
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}
