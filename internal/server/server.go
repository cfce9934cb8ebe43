// Package server is scopegate's HTTP API: POST /v1/decide and the health,
// readiness and metrics endpoints, on gorilla/mux.
package server

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/scopegate/scopegate/internal/auth"
	"github.com/scopegate/scopegate/internal/decisionlog"
	"github.com/scopegate/scopegate/internal/engine"
	"github.com/scopegate/scopegate/internal/forwardauth"
	"github.com/scopegate/scopegate/internal/logindex"
	"github.com/scopegate/scopegate/internal/request"
	"github.com/scopegate/scopegate/internal/token"
)

// DecisionLog receives every decision. Log must return only once the record
// is durable: a decision whose record could not be written is not served as
// an allow. The event's Input and Result refer to storage the server reuses
// for later requests: a DecisionLog must be done with them when it returns
// (decisionlog.Writer has encoded the record by then).
type DecisionLog interface {
	LogDurable(ctx context.Context, ev decisionlog.Event) error
}

// Options configure a Server.
type Options struct {
	// Log receives every decision; nil means decisions are not logged
	// (tests and benchmarks only: serve always configures one).
	Log DecisionLog
	// Logger is for operators: errors, panics, startup.
	Logger *slog.Logger
	// Registerer takes the Prometheus metrics; nil makes a private registry.
	Registerer prometheus.Registerer
	// Gatherer serves /metrics; defaults to the private registry.
	Gatherer prometheus.Gatherer
	// Labels go into every decision-log record (e.g. app, version, host).
	Labels map[string]string
	// Now is the clock; defaults to time.Now.
	Now func() time.Time
	// Auth checks callers; nil means auth off (every caller may decide;
	// admin endpoints are open only because the operator chose no auth).
	Auth *auth.Authenticator
	// Status, when set, describes how the policy was loaded (bundle state):
	// /ready shows details under "bundle" and lastError, if not empty, as
	// "last_error".
	Status func() (details any, lastError string)
	// DecisionLogPath is the active decision log file that the auditor
	// endpoints (/v1/admin/decisions, .../verify, /v1/admin/advice) read
	// back; "" or "-" (stdout) turns them off.
	DecisionLogPath string
	// AllowedHosts are host names, besides loopback names and IP addresses,
	// that requests may name in Host while authentication is off: the
	// configured address's host, and --allowed-host (see guardBrowser).
	AllowedHosts []string
	// Tokens verifies the access tokens requests may send instead of a
	// scope list; nil refuses them (400).
	Tokens *token.Verifier
	// GatewayDryRun lets every forwarded request through (/v1/forward-auth
	// and Envoy's ext_authz answer allow) while logging the real decision:
	// for rolling scopegate out in front of live traffic.
	GatewayDryRun bool
}

// Server answers decisions with the engine it currently holds.
type Server struct {
	engine  atomic.Pointer[engine.Engine]
	bundles atomic.Pointer[bundlesMemo] // the last revision's Event.Bundles
	opts    Options
	router  *mux.Router
	metrics *metrics
	// index answers the auditor endpoints once IndexLog has built it
	// (indexed); until then they read the files (admin.go).
	index   *logindex.Index
	indexed atomic.Bool
}

// New builds a server. eng may be nil: until SetEngine gives it one, every
// decision is a deny with reason policy_error and /ready answers 503.
func New(eng *engine.Engine, opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Registerer == nil {
		reg := prometheus.NewRegistry()
		opts.Registerer, opts.Gatherer = reg, reg
	}
	s := &Server{opts: opts, metrics: newMetrics(opts.Registerer)}
	if p := opts.DecisionLogPath; p != "" && p != "-" {
		s.index = logindex.New(p)
	}
	registerCacheMetrics(opts.Registerer, func() engine.CacheStats { return s.engine.Load().CacheStats() })
	if eng != nil {
		s.engine.Store(eng)
	}
	r := mux.NewRouter()
	r.Use(s.recoverPanics, withRequestID, s.guardBrowser, s.authenticate)
	r.HandleFunc("/v1/decide", s.handleDecide).Methods(http.MethodPost)
	r.HandleFunc("/v1/decide/batch", s.handleDecideBatch).Methods(http.MethodPost)
	r.HandleFunc(forwardauth.Path, s.handleForwardAuth)                   // any method: gateways forward GET, HEAD, POST...
	r.PathPrefix(forwardauth.Path + "/").HandlerFunc(s.handleForwardAuth) // Envoy's HTTP ext_authz: path_prefix + path
	r.HandleFunc("/v1/scopes", s.handleScopes).Methods(http.MethodGet)
	r.HandleFunc("/v1/scopes/normalize", s.handleNormalize).Methods(http.MethodPost)
	r.HandleFunc("/v1/scopes/{name}", s.handleScope).Methods(http.MethodGet)
	r.HandleFunc("/health", s.handleHealth).Methods(http.MethodGet)
	r.HandleFunc("/ready", s.handleReady).Methods(http.MethodGet)
	s.registerAdmin(r) // /v1/admin/* for auditors, and the /ui page (admin.go)
	if opts.Gatherer != nil {
		r.Handle("/metrics", promhttp.HandlerFor(opts.Gatherer, promhttp.HandlerOpts{})).Methods(http.MethodGet)
	}
	r.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, http.StatusNotFound, &request.Error{Code: "not_found", Message: "no such endpoint"})
	})
	r.MethodNotAllowedHandler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, http.StatusMethodNotAllowed, &request.Error{Code: "method_not_allowed", Message: "method not allowed on this endpoint"})
	})
	s.router = r
	return s
}

// ServeHTTP makes Server an http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.router.ServeHTTP(w, r) }

// SetEngine swaps the engine atomically; requests already evaluating finish
// on the engine they started with.
func (s *Server) SetEngine(e *engine.Engine) { s.engine.Store(e) }

// Engine returns the engine in use, or nil.
func (s *Server) Engine() *engine.Engine { return s.engine.Load() }

func (s *Server) handleHealth(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) handleReady(w http.ResponseWriter, _ *http.Request) {
	eng := s.engine.Load()
	body := map[string]any{"ready": eng != nil}
	if s.opts.Status != nil {
		details, lastError := s.opts.Status()
		body["bundle"] = details
		if lastError != "" {
			body["last_error"] = lastError
		}
	}
	if s.opts.Tokens != nil {
		// Not a readiness condition: an unreachable issuer affects its
		// tokens only (token_unavailable), and every replica alike.
		body["tokens"] = s.opts.Tokens.Status()
	}
	if eng == nil {
		body["reason"] = "no policy loaded"
		writeJSON(w, http.StatusServiceUnavailable, body)
		return
	}
	body["bundle_revision"] = eng.Revision()
	writeJSON(w, http.StatusOK, body)
}

// recoverPanics turns a panic into a logged, fail-closed answer. On the
// decide path that is a deny, never a 500 a caller might misread.
func (s *Server) recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.opts.Logger.Error("panic serving request", "path", r.URL.Path, "panic", v, "stack", string(debug.Stack()))
			s.metrics.panics.Inc()
			if r.URL.Path == "/v1/decide" || forwardauth.IsPath(r.URL.Path) {
				d := engine.Deny(engine.ReasonPolicyError, "internal error while deciding; denied")
				status := http.StatusOK // /v1/decide: the answer says deny
				if forwardauth.IsPath(r.URL.Path) {
					status = forwardauth.Status(&d) // a gateway lets any 200 through
				}
				writeJSON(w, status, response{DecisionID: uuid.NewString(), Decision: d, Policy: engine.Policy})
				return
			}
			writeError(w, http.StatusInternalServerError, &request.Error{Code: "internal", Message: "internal error"})
		}()
		next.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v) // the client went away; nothing useful to do
}

type errorBody struct {
	Error      *request.Error `json:"error"`
	DecisionID string         `json:"decision_id,omitempty"`
}

func writeError(w http.ResponseWriter, status int, e *request.Error) {
	writeJSON(w, status, errorBody{Error: e})
}

var errNoEngine = errors.New("no policy loaded")
