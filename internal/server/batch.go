package server

import (
	"errors"
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/scopegate/scopegate/internal/engine"
	"github.com/scopegate/scopegate/internal/request"
)

// batchResponse answers POST /v1/decide/batch: one /v1/decide answer per
// check, in the order of the checks.
type batchResponse struct {
	Results []response `json:"results"`
}

// handleDecideBatch decides many checks for one token: an app deciding
// which features to show. Every check is a decision of its own: its own
// decision_id, its own decision-log record, failing closed on its own.
// All checks are decided by the same engine (one bundle revision).
func (s *Server) handleDecideBatch(w http.ResponseWriter, r *http.Request) {
	start := s.opts.Now()
	if explain := r.URL.Query().Get("explain"); explain != "" && explain != "notes" {
		s.reject(w, r, uuid.NewString(), start, http.StatusBadRequest, &request.Error{Code: request.CodeInvalidInput, Field: "explain",
			Message: "query parameter explain=full is not available for batches; ask /v1/decide?explain=full for one check"})
		return
	}
	ins, bad := request.DecodeBatch(http.MaxBytesReader(w, r.Body, request.MaxBatchBodyBytes))
	if bad != nil {
		status := http.StatusBadRequest
		if bad.Code == request.CodeTooLarge {
			status = http.StatusRequestEntityTooLarge
		}
		s.reject(w, r, uuid.NewString(), start, status, bad)
		return
	}
	// One token for all checks: verified once.
	var pre *engine.Decision
	if ins[0].AccessToken != "" {
		verified := ins[0]
		if pre, bad = s.verifyToken(r.Context(), &verified); bad != nil {
			s.reject(w, r, uuid.NewString(), start, http.StatusBadRequest, bad)
			return
		}
		for i := range ins {
			ins[i].AccessToken, ins[i].GrantedScopes = "", verified.GrantedScopes
			ins[i].Subject, ins[i].ClientID, ins[i].Claims, ins[i].Token = verified.Subject, verified.ClientID, verified.Claims, verified.Token
		}
	}
	eng := s.engine.Load()
	out := batchResponse{Results: make([]response, len(ins))}
	// Every record but the last is only queued; waiting for the last makes
	// them all durable with one wait (one fsync) instead of one per check.
	queued := make([]bool, len(ins))
	q, _ := s.opts.Log.(queuer)
	var failures uint64
	if q != nil {
		failures = q.Failures()
	}
	a := newAnswer()
	// The first check's record holds the token fields the checks share;
	// the others refer to it, so a batch writes them once.
	ref := batchRef{Checks: len(ins)}
	// Each check is timed from its own start (the first from the request's)
	// to its record, the last one's wait included.
	took := make([]time.Duration, len(ins))
	for i, in := range ins {
		checkStart := start
		if i > 0 {
			checkStart = s.opts.Now()
		}
		resp := s.evaluate(r, eng, uuid.NewString(), in, pre, engine.Options{})
		last := i == len(ins)-1
		mask := s.logMask(r, eng, in, &resp)
		if s.opts.Log != nil {
			a.encode(resp.Decision) // for the record only: the answer is one of many
		}
		if i == 0 {
			ref.ID = resp.DecisionID
		}
		ref.Check = i
		err := s.record(r, resp.DecisionID, checkStart, in, &ref, resp, a, mask, last)
		if err == nil && last && q != nil && q.Failures() != failures {
			err = errors.New("a record of this batch may have been lost while the log failed and recovered")
		}
		if err != nil {
			s.logUnavailable(&resp, err)
			if last {
				// The earlier records' durability rode on this one.
				for j := range i {
					if queued[j] {
						s.logUnavailable(&out.Results[j], err)
					}
				}
			}
		} else {
			queued[i] = true
		}
		out.Results[i] = resp
		took[i] = s.opts.Now().Sub(checkStart)
	}
	for i, resp := range out.Results {
		s.metrics.observe(resp.Reason, resp.Allow, took[i])
	}
	a.recycle()
	writeJSON(w, http.StatusOK, out)
}
