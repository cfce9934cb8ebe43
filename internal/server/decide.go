package server

import (
	"context"
	"fmt"
	"net/http"
	"sync"
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

	var pre *engine.Decision
	if in.AccessToken != "" {
		if pre, bad = s.verifyToken(r.Context(), &in); bad != nil {
			s.reject(w, r, id, start, http.StatusBadRequest, bad)
			return
		}
	}
	a := newAnswer()
	resp := s.decide(r, s.engine.Load(), id, start, in, pre, opt, a)
	writeDecision(w, &resp, a)
	a.recycle() // not deferred: after a panic, a is not reused
}

// decide answers one decoded question with eng (nil: a policy_error deny),
// records it in the decision log and counts it. A decision that cannot be
// recorded is answered as a deny. a ends up holding the answer's decision,
// encoded. /v1/decide goes through here.
func (s *Server) decide(r *http.Request, eng *engine.Engine, id string, start time.Time, in engine.Input, pre *engine.Decision, opt engine.Options, a *answer) response {
	resp := s.evaluate(r, eng, id, in, pre, opt)
	mask := s.logMask(r, eng, in, &resp)
	a.encode(resp.Decision)
	if err := s.record(r, id, start, in, nil, resp, a, mask, true); err != nil {
		s.logUnavailable(&resp, err)
		a.encode(resp.Decision)
	}
	s.metrics.observe(resp.Reason, resp.Allow, s.opts.Now().Sub(start))
	return resp
}

// answer is one decision encoded once for both its record and the
// /v1/decide answer (whose other members writeDecision adds), recycled
// across requests: encoding the decision with encoding/json for the answer
// cost more than the streaming encoder does for both.
type answer struct {
	d   engine.Decision // what enc holds; kept here so that logResult(&d) is no allocation
	enc decisionlog.Canonical
	err error    // from encoding: enc is not d's encoding
	out []byte   // writeDecision's buffer
	in  logInput // the record's input while record logs it
}

var answers = sync.Pool{New: func() any { return new(answer) }}

func newAnswer() *answer { return answers.Get().(*answer) }

func (a *answer) recycle() {
	if cap(a.out) > 64<<10 || cap(a.enc.Bytes()) > 64<<10 {
		return // an outsized answer (explain=full): let it go
	}
	answers.Put(a)
}

// encode makes a hold d's encoding.
func (a *answer) encode(d engine.Decision) {
	a.d = d
	a.err = a.enc.Encode((*logResult)(&a.d))
	a.d = engine.Decision{} // the pool must not keep d's slices alive
}

// writeDecision answers with resp, whose decision a holds encoded.
func writeDecision(w http.ResponseWriter, resp *response, a *answer) {
	writeDecisionStatus(w, http.StatusOK, resp, a)
}

// writeDecisionStatus is writeDecision answering with status.
func writeDecisionStatus(w http.ResponseWriter, status int, resp *response, a *answer) {
	if a.err != nil {
		writeJSON(w, status, resp)
		return
	}
	a.out = appendDecision(a.out[:0], resp, a)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(a.out) // the client went away; nothing useful to do
}

// appendDecision appends the JSON answer of resp, whose decision a holds
// encoded (a.err == nil), to out.
func appendDecision(out []byte, resp *response, a *answer) []byte {
	out = append(out, `{"decision_id":`...)
	out = decisionlog.AppendString(out, resp.DecisionID)
	out = append(out, `,"bundle_revision":`...)
	out = decisionlog.AppendString(out, resp.BundleRevision)
	out = append(out, `,"policy":`...)
	out = decisionlog.AppendString(out, resp.Policy)
	if members := a.enc.Bytes(); len(members) > 2 { // {...}: the decision's members
		out = append(out, ',')
		out = append(out, members[1:len(members)-1]...)
	}
	return append(out, '}', '\n')
}

// evaluate asks the engine; any error is already a fail-closed decision.
// pre, when set, is the decision already made (a refused access token).
func (s *Server) evaluate(r *http.Request, eng *engine.Engine, id string, in engine.Input, pre *engine.Decision, opt engine.Options) response {
	if pre != nil {
		resp := response{DecisionID: id, Decision: *pre, Policy: engine.Policy}
		if eng != nil {
			resp.BundleRevision = eng.Revision()
		}
		return resp
	}
	if eng == nil {
		return response{DecisionID: id, Decision: engine.Deny(engine.ReasonPolicyError, errNoEngine.Error()+": denied"), Policy: engine.Policy}
	}
	d, err := eng.DecideInput(r.Context(), in, opt)
	if err != nil {
		s.opts.Logger.Error("decision failed closed", "decision_id", id, "error", err)
	}
	return response{DecisionID: id, Decision: d, BundleRevision: eng.Revision(), Policy: engine.Policy}
}

// logUnavailable turns an answer whose record could not be made durable
// into a deny: an allow nobody can audit is not served.
func (s *Server) logUnavailable(resp *response, err error) {
	s.opts.Logger.Error("decision log unavailable; denying", "decision_id", resp.DecisionID, "error", err)
	resp.Decision = engine.Deny(ReasonLogUnavailable, "the decision could not be recorded in the decision log; denied")
}

// reject answers a bad request and still records it: auditors see every
// call, including the malformed ones.
func (s *Server) reject(w http.ResponseWriter, r *http.Request, id string, start time.Time, status int, e *request.Error) {
	s.recordReject(r, id, start, e)
	w.Header().Set("X-Decision-Id", id)
	writeJSON(w, status, errorBody{Error: e, DecisionID: id})
}

// recordReject logs and counts a request refused as bad input.
func (s *Server) recordReject(r *http.Request, id string, start time.Time, e *request.Error) {
	d := engine.Deny(engine.ReasonInvalidInput, e.Error())
	if err := s.recordEvent(r, id, start, map[string]any{"error": e}, (*logResult)(&d), &d, "", "", "", nil, true); err != nil {
		s.opts.Logger.Error("decision log unavailable", "decision_id", id, "error", err)
	}
	s.metrics.observe(engine.ReasonInvalidInput, false, s.opts.Now().Sub(start))
}

// record writes one answered decision, resp, to the decision log, with a
// holding resp.Decision encoded. wait: return only once it is durable;
// otherwise only queue it, if the log can (see queuer), and the caller must
// wait on a later record. batch is nil outside a batch.
func (s *Server) record(r *http.Request, id string, start time.Time, in engine.Input, batch *batchRef, resp response, a *answer, mask []string, wait bool) error {
	if s.opts.Log == nil {
		return nil
	}
	if a.err != nil {
		return fmt.Errorf("encode the decision: %w", a.err)
	}
	a.in = logInput{Input: in, batch: batch} // in a's storage: a local would escape to the heap
	defer func() { a.in = logInput{} }()
	var result any = &a.enc
	if needsBound(&resp.Decision, a.enc.Bytes()) {
		d := boundedForLog(resp.Decision)
		result = (*logResult)(&d)
	}
	return s.recordEvent(r, id, start, &a.in, result, &resp.Decision, resp.BundleRevision, boundedString(in.Subject), boundedString(in.ClientID), mask, wait)
}

// boundedString is a caller's string as a record's top-level member keeps
// it: cut to logStringMax with a marker.
func boundedString(s string) string {
	left := logStringMax + 64
	return cutString(s, &left)
}

// logMask evaluates eng's data.system.log.mask, if the policy has one, for
// the record of resp: the pointers to mask besides the configured ones. If
// it fails, the policy's masking cannot be honoured: the decision becomes a
// policy_error deny and its record masks the whole input, so the auditor
// still sees the decision and nothing the policy meant to hide.
func (s *Server) logMask(r *http.Request, eng *engine.Engine, in engine.Input, resp *response) []string {
	if s.opts.Log == nil || !eng.HasLogMask() {
		return nil
	}
	mask, err := eng.LogMask(r.Context(), map[string]any{
		"decision_id": resp.DecisionID, "path": decisionPath, "input": in.Map(), "result": resp.Decision,
		"labels": s.opts.Labels, "requested_by": r.RemoteAddr, "reason": resp.Reason,
		"subject": in.Subject, "client_id": in.ClientID, "allow": resp.Allow,
	})
	if err != nil {
		s.opts.Logger.Error("decision-log masking policy failed; denying", "decision_id", resp.DecisionID, "error", err)
		resp.Decision = engine.Deny(engine.ReasonPolicyError, "the decision-log masking policy ("+engine.LogMaskQuery+") failed; denied")
		return []string{"/input"}
	}
	return mask
}

// decisionPath is the records' path: the rule every decision reads.
const decisionPath = "scopegate/authz/decision"

// logInput is the decision input as the log records it: the members of
// engine.Input.Map, written without building that map (decisionlog.Object).
// TestLogInputMatchesMap keeps the two in step. In a batch it also names
// the batch, and only its first check's record holds the shared token
// fields (see batchRef).
type logInput struct {
	engine.Input
	batch *batchRef
}

// LogMembers writes the members in ascending key order.
func (in *logInput) LogMembers(w decisionlog.MemberWriter) {
	shared := in.batch == nil || in.batch.Check == 0
	nonEmpty(w, "action", in.Action)
	if in.batch != nil {
		w.Value("batch", in.batch)
	}
	if shared && in.Claims != nil {
		w.Value("claims", in.Claims)
	}
	if shared {
		nonEmpty(w, "client_id", in.ClientID)
		if in.Context != nil {
			w.Value("context", in.Context)
		}
		w.Strings("granted_scopes", in.GrantedScopes)
	}
	nonEmpty(w, "method", in.Method)
	nonEmpty(w, "path", in.Path)
	if shared && in.RequestedScopes != nil {
		w.Strings("requested_scopes", in.RequestedScopes)
	}
	if in.Resource != nil {
		w.Value("resource", in.Resource)
	}
	if shared {
		nonEmpty(w, "subject", in.Subject)
	}
	if shared && in.Token != nil {
		w.Value("token", in.Token) // masked by the log: a member named token
	}
}

// queuer is what a decision log may offer beyond LogDurable: queueing a
// record without waiting for it. The log keeps queue order, so once a later
// record is durable every earlier one written is too; a batch waits once.
// But a queued record can fail and the log recover before that wait, so the
// log also counts the records it accepted and could not write (Failures):
// a batch that sees the count move while its records were queued cannot
// tell whose failed, and answers none of them as allowed.
type queuer interface {
	Log(ctx context.Context, ev decisionlog.Event) error
	Failures() uint64
}

// recordEvent logs the record of decision d, whose result member is result
// (d as logResult, or encoded).
func (s *Server) recordEvent(r *http.Request, id string, start time.Time, input, result any, d *engine.Decision, revision, subject, clientID string, mask []string, wait bool) error {
	if s.opts.Log == nil {
		return nil
	}
	ev := decisionlog.Event{
		DecisionID:  id,
		Timestamp:   start.UTC(),
		Path:        decisionPath,
		Input:       input,
		Result:      result,
		Metrics:     handlerTimer(s.opts.Now().Sub(start)),
		Labels:      s.opts.Labels,
		RequestedBy: r.RemoteAddr,
		Reason:      d.Reason,
		Subject:     subject,
		ClientID:    clientID,
		Allow:       d.Allow,

		MaskPointers: mask,
	}
	if c, ok := auth.CallerFrom(r.Context()); ok && c.Method != "none" {
		ev.Caller = c.Method + ":" + c.Name
	}
	if revision != "" {
		ev.Bundles = s.bundlesFor(revision)
	}
	if q, ok := s.opts.Log.(queuer); ok && !wait {
		return q.Log(r.Context(), ev)
	}
	return s.opts.Log.LogDurable(r.Context(), ev)
}

// logResult is the decision as the log records it: the members
// json.Marshal(engine.Decision) gives, written without reflection
// (decisionlog.Object). TestLogResultMatchesJSON keeps the two in step.
type logResult engine.Decision

// LogMembers writes the members in ascending key order; omitempty as in
// engine.Decision's tags.
func (d *logResult) LogMembers(w decisionlog.MemberWriter) {
	nonEmpty(w, "action", d.Action)
	w.Value("allow", d.Allow)
	w.Strings("explain", d.Explain)
	if len(d.ForeignScopes) > 0 {
		w.Strings("foreign_scopes", d.ForeignScopes)
	}
	w.Strings("granted_effective", d.GrantedEffective)
	w.Strings("matched", d.Matched)
	w.Strings("missing", d.Missing)
	w.Value("narrowed_by_user", d.NarrowedByUser)
	nonEmpty(w, "narrowest", d.Narrowest)
	w.String("reason", d.Reason)
	nonEmpty(w, "remedy", d.Remedy)
	w.Strings("requested_not_granted", d.RequestedNotGranted)
	w.Strings("required_any_of", d.RequiredAnyOf)
	nonEmpty(w, "route", d.Route)
	w.Value("sensitive", d.Sensitive)
	if len(d.Trace) > 0 {
		w.Strings("trace", d.Trace)
	}
	if len(d.UnknownScopes) > 0 {
		w.Strings("unknown_scopes", d.UnknownScopes)
	}
	nonEmpty(w, "www_authenticate", d.WWWAuthenticate)
}

// handlerTimer is the record's metrics: OPA's timer_server_handler_ns.
type handlerTimer time.Duration

func (t handlerTimer) LogMembers(w decisionlog.MemberWriter) {
	w.Value("timer_server_handler_ns", time.Duration(t).Nanoseconds())
}

// nonEmpty writes a string member that is left out when empty (omitempty).
func nonEmpty(w decisionlog.MemberWriter, key, v string) {
	if v != "" {
		w.String(key, v)
	}
}

// bundlesMemo is Event.Bundles for one revision, shared by the records of
// that revision (the log only reads it) instead of a map per decision.
type bundlesMemo struct {
	revision string
	bundles  map[string]decisionlog.BundleInfo
}

func (s *Server) bundlesFor(revision string) map[string]decisionlog.BundleInfo {
	if m := s.bundles.Load(); m != nil && m.revision == revision {
		return m.bundles
	}
	m := &bundlesMemo{revision, map[string]decisionlog.BundleInfo{"scopegate": {Revision: revision}}}
	s.bundles.Store(m)
	return m.bundles
}
