package server

import (
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/scopegate/scopegate/internal/auth"
	"github.com/scopegate/scopegate/internal/decisionlog"
	"github.com/scopegate/scopegate/internal/engine"
	"github.com/scopegate/scopegate/internal/request"
)

// ReasonLogUnavailable: the decision could not be recorded, so it is denied.
const ReasonLogUnavailable = "log_unavailable"

// response is the /v1/decide answer: the policy's decision plus where it
// came from.
type response struct {
	DecisionID string `json:"decision_id"`
	engine.Decision
	BundleRevision string `json:"bundle_revision"`
	Policy         string `json:"policy"`
}

func (s *Server) handleDecide(w http.ResponseWriter, r *http.Request) {
	start := s.opts.Now()
	id := uuid.NewString()
	w.Header().Set("X-Decision-Id", id)

	var opt engine.Options
	switch explain := r.URL.Query().Get("explain"); explain {
	case "", "notes":
	case "full":
		opt.Trace = true
	default:
		s.reject(w, r, id, start, http.StatusBadRequest, &request.Error{Code: request.CodeInvalidInput, Field: "explain", Message: "query parameter explain must be full"})
		return
	}

	in, bad := request.Decode(http.MaxBytesReader(w, r.Body, request.MaxBodyBytes))
	if bad != nil {
		status := http.StatusBadRequest
		if bad.Code == request.CodeTooLarge {
			status = http.StatusRequestEntityTooLarge
		}
		s.reject(w, r, id, start, status, bad)
		return
	}

	writeJSON(w, http.StatusOK, s.decide(r, s.engine.Load(), id, start, in, opt))
}

// decide answers one decoded question with eng (nil: a policy_error deny),
// records it in the decision log and counts it. A decision that cannot be
// recorded is answered as a deny. /v1/decide and each check of
// /v1/decide/batch go through here.
func (s *Server) decide(r *http.Request, eng *engine.Engine, id string, start time.Time, in engine.Input, opt engine.Options) response {
	revision := ""
	var d engine.Decision
	if eng == nil {
		d = engine.Deny(engine.ReasonPolicyError, errNoEngine.Error()+": denied")
	} else {
		revision = eng.Revision()
		var err error
		d, err = eng.DecideInput(r.Context(), in, opt)
		if err != nil {
			s.opts.Logger.Error("decision failed closed", "decision_id", id, "error", err)
		}
	}

	resp := response{DecisionID: id, Decision: d, BundleRevision: revision, Policy: engine.Policy}
	if err := s.record(r, id, start, in.Map(), resp.Decision, revision, in.Subject, in.ClientID); err != nil {
		s.opts.Logger.Error("decision log unavailable; denying", "decision_id", id, "error", err)
		resp.Decision = engine.Deny(ReasonLogUnavailable, "the decision could not be recorded in the decision log; denied")
	}
	s.metrics.observe(resp.Reason, resp.Allow, s.opts.Now().Sub(start))
	return resp
}

// reject answers a bad request and still records it: auditors see every
// call, including the malformed ones.
func (s *Server) reject(w http.ResponseWriter, r *http.Request, id string, start time.Time, status int, e *request.Error) {
	d := engine.Deny(engine.ReasonInvalidInput, e.Error())
	if err := s.record(r, id, start, map[string]any{"error": e}, d, "", "", ""); err != nil {
		s.opts.Logger.Error("decision log unavailable", "decision_id", id, "error", err)
	}
	s.metrics.observe(engine.ReasonInvalidInput, false, s.opts.Now().Sub(start))
	w.Header().Set("X-Decision-Id", id)
	writeJSON(w, status, errorBody{Error: e, DecisionID: id})
}

func (s *Server) record(r *http.Request, id string, start time.Time, input map[string]any, d engine.Decision, revision, subject, clientID string) error {
	if s.opts.Log == nil {
		return nil
	}
	ev := decisionlog.Event{
		DecisionID:  id,
		Timestamp:   start.UTC(),
		Path:        "scopegate/authz/decision",
		Input:       input,
		Result:      d,
		Metrics:     map[string]any{"timer_server_handler_ns": s.opts.Now().Sub(start).Nanoseconds()},
		Labels:      s.opts.Labels,
		RequestedBy: r.RemoteAddr,
		Reason:      d.Reason,
		Subject:     subject,
		ClientID:    clientID,
		Allow:       d.Allow,
	}
	if c, ok := auth.CallerFrom(r.Context()); ok && c.Method != "none" {
		ev.Caller = c.Method + ":" + c.Name
	}
	if revision != "" {
		ev.Bundles = map[string]decisionlog.BundleInfo{"scopegate": {Revision: revision}}
	}
	return s.opts.Log.LogDurable(r.Context(), ev)
}
