package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/gorilla/mux"

	"github.com/scopegate/scopegate/internal/advisor"
	"github.com/scopegate/scopegate/internal/decisionlog"
	"github.com/scopegate/scopegate/internal/engine"
	"github.com/scopegate/scopegate/internal/request"
	"github.com/scopegate/scopegate/internal/ui"
)

// The auditor endpoints read the decision log files back (Options.
// DecisionLogPath) and the policy's action table. They sit under
// /v1/admin/, so they need the admin role when auth is on (requiredRole).
// The web UI (/ui, internal/ui) is a static page that calls them.

// Limits of GET /v1/admin/decisions.
const (
	DefaultDecisionsLimit = 100
	MaxDecisionsLimit     = 1000
)

func (s *Server) registerAdmin(r *mux.Router) {
	r.HandleFunc("/v1/admin/decisions", s.handleAdminDecisions).Methods(http.MethodGet)
	r.HandleFunc("/v1/admin/decisions/verify", s.handleAdminVerify).Methods(http.MethodGet)
	r.HandleFunc("/v1/admin/advice", s.handleAdminAdvice).Methods(http.MethodGet)
	r.HandleFunc("/v1/admin/actions", s.handleAdminActions).Methods(http.MethodGet)
	assets := ui.Handler()
	r.Handle("/ui", assets).Methods(http.MethodGet, http.MethodHead)
	r.PathPrefix("/ui/").Handler(assets).Methods(http.MethodGet, http.MethodHead)
}

// decisionsResponse answers GET /v1/admin/decisions.
type decisionsResponse struct {
	// Decisions, newest first.
	Decisions []decisionlog.Event `json:"decisions"`
	Count     int                 `json:"count"`
	Limit     int                 `json:"limit"`
	// Limited: the limit was reached; older matching records may exist.
	Limited bool `json:"limited"`
	// Files is the number of log files (rotated + active).
	Files int `json:"files"`
	// Warnings name lines that could not be read (Verify says more).
	Warnings []string `json:"warnings"`
}

// logFiles returns the decision log's files, or answers the error.
func (s *Server) logFiles(w http.ResponseWriter) ([]string, bool) {
	p := s.opts.DecisionLogPath
	if p == "" || p == "-" {
		writeError(w, http.StatusNotFound, &request.Error{Code: "no_decision_log",
			Message: "this server writes no decision log file it can read back (decision log off or on stdout)"})
		return nil, false
	}
	files, err := decisionlog.Files(p)
	if err != nil {
		s.opts.Logger.Error("listing decision log files", "error", err)
		writeError(w, http.StatusInternalServerError, &request.Error{Code: "internal", Message: "cannot list the decision log files"})
		return nil, false
	}
	return files, true
}

// queryParams checks that r names only the allowed query parameters, each
// at most once.
func queryParams(w http.ResponseWriter, r *http.Request, allowed ...string) (func(string) string, bool) {
	q := r.URL.Query()
	for k, vs := range q {
		ok := false
		for _, a := range allowed {
			ok = ok || a == k
		}
		switch {
		case !ok:
			writeError(w, http.StatusBadRequest, &request.Error{Code: request.CodeInvalidInput, Field: k, Message: fmt.Sprintf("unknown query parameter (allowed: %v)", allowed)})
			return nil, false
		case len(vs) > 1:
			writeError(w, http.StatusBadRequest, &request.Error{Code: request.CodeInvalidInput, Field: k, Message: "given more than once"})
			return nil, false
		}
	}
	return q.Get, true
}

// ParseTime reads a time bound: RFC 3339 (with or without fractional
// seconds), or a UTC "2006-01-02T15:04" or "2006-01-02".
func ParseTime(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a time: use RFC 3339 (2026-11-23T18:00:00Z) or 2026-11-23", s)
}

// period reads from and to.
func period(w http.ResponseWriter, get func(string) string) (from, to time.Time, ok bool) {
	for _, p := range []struct {
		name string
		t    *time.Time
	}{{"from", &from}, {"to", &to}} {
		if v := get(p.name); v != "" {
			t, err := ParseTime(v)
			if err != nil {
				writeError(w, http.StatusBadRequest, &request.Error{Code: request.CodeInvalidInput, Field: p.name, Message: err.Error()})
				return from, to, false
			}
			*p.t = t
		}
	}
	if !from.IsZero() && !to.IsZero() && !from.Before(to) {
		writeError(w, http.StatusBadRequest, &request.Error{Code: request.CodeInvalidInput, Field: "to", Message: "to must be after from"})
		return from, to, false
	}
	return from, to, true
}

// IndexLog builds the index of the decision log that the auditor endpoints
// read, then keeps it current (new records verified as they come) every
// interval until ctx ends. Until the first build is done the endpoints read
// the files themselves.
func (s *Server) IndexLog(ctx context.Context, interval time.Duration) {
	if s.index == nil {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := s.index.Refresh(); err != nil {
			s.opts.Logger.Warn("indexing the decision log", "error", err)
		} else if !s.indexed.Swap(true) {
			s.opts.Logger.Info("decision log indexed for the auditor endpoints", "records", s.index.Records())
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// handleAdminDecisions lists decision-log records, newest first. Filters:
// decision_id, subject, client_id, scope (granted), reason,
// allow=true|false, from, to (from inclusive, to exclusive), limit (default
// 100, at most 1000). With the index built it reads only the records it
// returns (and, for scope, the candidates); before, it reads the files
// newest first and stops once it has limit records.
func (s *Server) handleAdminDecisions(w http.ResponseWriter, r *http.Request) {
	get, ok := queryParams(w, r, "decision_id", "subject", "client_id", "scope", "reason", "allow", "from", "to", "limit")
	if !ok {
		return
	}
	f := decisionlog.Filter{DecisionID: get("decision_id"), Subject: get("subject"), ClientID: get("client_id"), Scope: get("scope"), Reason: get("reason")}
	switch a := get("allow"); a {
	case "":
	case "true", "false":
		allow := a == "true"
		f.Allow = &allow
	default:
		writeError(w, http.StatusBadRequest, &request.Error{Code: request.CodeInvalidInput, Field: "allow", Message: "must be true or false"})
		return
	}
	if f.From, f.To, ok = period(w, get); !ok {
		return
	}
	limit := DefaultDecisionsLimit
	if l := get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > MaxDecisionsLimit {
			writeError(w, http.StatusBadRequest, &request.Error{Code: request.CodeInvalidInput, Field: "limit", Message: fmt.Sprintf("must be a number from 1 to %d", MaxDecisionsLimit)})
			return
		}
		limit = n
	}
	files, ok := s.logFiles(w)
	if !ok {
		return
	}
	out := decisionsResponse{Decisions: []decisionlog.Event{}, Limit: limit, Files: len(files), Warnings: []string{}}
	// From the index once it is built; until then, from the files, newest
	// first, stopping at limit.
	read := func(i int, n int) ([]decisionlog.Event, error) { return lastMatches(files[i], f, n) }
	from := len(files) - 1
	if s.indexed.Load() {
		read, from = func(int, int) ([]decisionlog.Event, error) { return s.index.Newest(f, limit) }, 0
	}
	for i := from; i >= 0 && len(out.Decisions) < limit; i-- {
		newest, err := read(i, limit-len(out.Decisions))
		if err != nil {
			out.Warnings = append(out.Warnings, err.Error())
		}
		out.Decisions = append(out.Decisions, newest...)
	}
	out.Count = len(out.Decisions)
	out.Limited = out.Count == limit
	writeJSON(w, http.StatusOK, out)
}

// lastMatches returns the last n records of file that match f, newest
// first. On a read error it returns what it read before it: a record being
// appended to the active file can be caught half-written.
func lastMatches(file string, f decisionlog.Filter, n int) ([]decisionlog.Event, error) {
	ring := make([]decisionlog.Event, n)
	seen := 0
	var readErr error
	for ev, err := range decisionlog.Query([]string{file}, f) {
		if err != nil {
			readErr = err
			break
		}
		ring[seen%n] = ev
		seen++
	}
	k := min(seen, n)
	out := make([]decisionlog.Event, 0, k)
	for i := 1; i <= k; i++ {
		out = append(out, ring[(seen-i)%n])
	}
	return out, readErr
}

// verifyResponse answers GET /v1/admin/decisions/verify.
type verifyResponse struct {
	OK              bool   `json:"ok"`
	Files           int    `json:"files"`
	Records         int    `json:"records"`
	StartsAtGenesis bool   `json:"starts_at_genesis"`
	FirstPrevHash   string `json:"first_prev_hash"`
	LastHash        string `json:"last_hash"`
	// Break locates the first record that breaks the chain.
	Break *chainBreak `json:"break,omitempty"`
}

type chainBreak struct {
	File   string `json:"file"`
	Line   int    `json:"line"`
	Kind   string `json:"kind"`
	Detail string `json:"detail"`
}

// handleAdminVerify checks the whole hash chain (decisionlog.Verify).
func (s *Server) handleAdminVerify(w http.ResponseWriter, r *http.Request) {
	if _, ok := queryParams(w, r); !ok {
		return
	}
	files, ok := s.logFiles(w)
	if !ok {
		return
	}
	if s.indexed.Load() {
		// Each record was verified once, as it was indexed.
		rep, err := s.index.Verify()
		s.writeVerify(w, rep, err)
		return
	}
	rep, err := decisionlog.Verify(files)
	if ce, isChain := errors.AsType[*decisionlog.ChainError](err); isChain && ce.Kind == decisionlog.KindTruncated && ce.File == files[len(files)-1] {
		// The active file's last record was being appended: look again.
		time.Sleep(50 * time.Millisecond)
		rep, err = decisionlog.Verify(files)
	}
	s.writeVerify(w, rep, err)
}

// writeVerify answers a chain report.
func (s *Server) writeVerify(w http.ResponseWriter, rep decisionlog.Report, err error) {
	out := verifyResponse{OK: err == nil, Files: rep.Files, Records: rep.Records, StartsAtGenesis: rep.Records > 0 && rep.StartsAtGenesis(),
		FirstPrevHash: rep.FirstPrevHash, LastHash: rep.LastHash}
	if err != nil {
		ce, isChain := errors.AsType[*decisionlog.ChainError](err)
		if !isChain {
			s.opts.Logger.Error("verifying decision log", "error", err)
			writeError(w, http.StatusInternalServerError, &request.Error{Code: "internal", Message: "cannot read the decision log"})
			return
		}
		out.Break = &chainBreak{File: ce.File, Line: ce.Line, Kind: string(ce.Kind), Detail: ce.Detail}
	}
	writeJSON(w, http.StatusOK, out)
}

// adviceResponse answers GET /v1/admin/advice.
type adviceResponse struct {
	BundleRevision string `json:"bundle_revision"`
	advisor.Report
	Warnings []string `json:"warnings"`
}

// handleAdminAdvice runs the least-privilege advisor over the decisions of
// a period (from, to; optionally one client_id), judging breadth with the
// catalog of the policy in use.
func (s *Server) handleAdminAdvice(w http.ResponseWriter, r *http.Request) {
	get, ok := queryParams(w, r, "from", "to", "client_id")
	if !ok {
		return
	}
	from, to, ok := period(w, get)
	if !ok {
		return
	}
	revision, cat, ok := s.catalog(w)
	if !ok {
		return
	}
	files, ok := s.logFiles(w)
	if !ok {
		return
	}
	rep, err := advisor.Analyze(cat, from, to, decisionlog.Query(files, decisionlog.Filter{ClientID: get("client_id"), From: from, To: to}))
	out := adviceResponse{BundleRevision: revision, Report: rep, Warnings: []string{}}
	if err != nil {
		out.Warnings = append(out.Warnings, "stopped reading at: "+err.Error())
	}
	writeJSON(w, http.StatusOK, out)
}

// actionsResponse answers GET /v1/admin/actions.
type actionsResponse struct {
	BundleRevision string `json:"bundle_revision"`
	*engine.ActionsView
	// ByScope: for every catalog scope, the actions and routes it matters to.
	ByScope map[string]engine.ScopeActions `json:"by_scope"`
}

// handleAdminActions serves the policy's named actions and routes, and for
// each scope which of them need it.
func (s *Server) handleAdminActions(w http.ResponseWriter, r *http.Request) {
	if _, ok := queryParams(w, r); !ok {
		return
	}
	eng := s.engine.Load()
	if eng == nil {
		writeError(w, http.StatusServiceUnavailable, &request.Error{Code: "no_policy", Message: errNoEngine.Error()})
		return
	}
	revision := eng.Revision()
	cat, err := eng.Catalog()
	if err != nil {
		s.opts.Logger.Error("catalog unavailable", "revision", revision, "error", err)
		writeError(w, http.StatusServiceUnavailable, &request.Error{Code: "no_catalog", Message: "the loaded policy carries no readable catalog"})
		return
	}
	v, err := eng.Actions(r.Context())
	if err != nil {
		s.opts.Logger.Error("policy actions unavailable", "revision", revision, "error", err)
		writeError(w, http.StatusServiceUnavailable, &request.Error{Code: "no_actions", Message: "the loaded policy's action table cannot be read"})
		return
	}
	out := actionsResponse{BundleRevision: revision, ActionsView: v, ByScope: make(map[string]engine.ScopeActions, cat.Len())}
	for _, name := range cat.Names() {
		out.ByScope[name] = v.ForScope(name)
	}
	writeJSON(w, http.StatusOK, out)
}
