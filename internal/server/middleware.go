package server

import (
	"context"
	"net/http"
	"strings"

	"github.com/google/uuid"

	"github.com/scopegate/scopegate/internal/auth"
	"github.com/scopegate/scopegate/internal/forwardauth"
	"github.com/scopegate/scopegate/internal/request"
)

type requestIDKey struct{}

// RequestID returns the request id set by the middleware, or "".
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// withRequestID keeps a caller's X-Request-Id when it is sane (so a trace
// spans services) and makes one otherwise; it is echoed in the response.
func withRequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-Id")
		if !saneID(id) {
			id = uuid.NewString()
		}
		w.Header().Set("X-Request-Id", id)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), requestIDKey{}, id)))
	})
}

func saneID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("-_.:", c)) {
			return false
		}
	}
	return true
}

// requiredRole: probes are open (orchestrators call them without
// credentials and they reveal nothing), metrics and admin endpoints need the
// admin role, everything else needs a decide caller. The /ui page's static
// assets are open too: a browser cannot attach a bearer token to a page
// load, and they hold no data (the same embedded bytes for everyone); every
// piece of data the page shows comes from /v1/admin/* and /v1/*, with the
// token the user pastes into the page.
func requiredRole(path string) auth.Role {
	switch {
	case path == "/health" || path == "/ready" || path == "/ui" || strings.HasPrefix(path, "/ui/"):
		return auth.RoleNone
	case path == "/metrics" || strings.HasPrefix(path, "/v1/admin/"):
		return auth.RoleAdmin
	}
	return auth.RoleDecide
}

// authenticate lets a request through only if its caller holds the role the
// path needs. With no Authenticator configured every caller is anonymous
// with the decide role, so admin paths stay closed.
func (s *Server) authenticate(next http.Handler) http.Handler {
	a := s.opts.Auth
	if a == nil {
		a = &auth.Authenticator{}
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		need := requiredRole(r.URL.Path)
		var caller auth.Caller
		if forwardauth.IsPath(r.URL.Path) {
			caller = a.AuthenticateFrom(r, forwardauth.GatewayAuthHeader)
		} else {
			caller = a.Authenticate(r)
		}
		if need == auth.RoleAdmin && !a.Enabled() {
			// With auth off, admin endpoints are for the local operator.
			caller.Role = auth.RoleAdmin
		}
		switch {
		case caller.Role >= need:
			next.ServeHTTP(w, r.WithContext(auth.WithCaller(r.Context(), caller)))
		case caller.Role == auth.RoleNone:
			s.metrics.authFailures.WithLabelValues("unauthenticated").Inc()
			msg := "a valid bearer token or client certificate is required"
			if forwardauth.IsPath(r.URL.Path) {
				// Not a challenge to the end user: the gateway is misconfigured.
				msg = "the gateway must authenticate with a client certificate or " + forwardauth.GatewayAuthHeader + ": Bearer <its token>; Authorization is the end user's"
			} else {
				w.Header().Set("WWW-Authenticate", `Bearer realm="scopegate"`)
			}
			writeError(w, http.StatusUnauthorized, &request.Error{Code: "unauthenticated", Message: msg})
		default:
			s.metrics.authFailures.WithLabelValues("forbidden").Inc()
			writeError(w, http.StatusForbidden, &request.Error{Code: "forbidden", Message: "this endpoint needs the " + need.String() + " role"})
		}
	})
}
