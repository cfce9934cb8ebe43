package server

import (
	"fmt"
	"net/http"

	"github.com/gorilla/mux"

	"github.com/scopegate/scopegate/internal/engine"
	"github.com/scopegate/scopegate/internal/request"
	"github.com/scopegate/scopegate/internal/scopeset"
)

// The catalog endpoints serve the catalog of the engine in use (whatever
// bundle or files it was built from), for consent screens, app developers
// and reviewers. They are read-only and are not decisions: nothing is
// written to the decision log.

// catalogResponse answers GET /v1/scopes.
type catalogResponse struct {
	BundleRevision string              `json:"bundle_revision"`
	Version        int                 `json:"version"`
	DefaultScope   string              `json:"default_scope"`
	Count          int                 `json:"count"`
	Scopes         []*engine.ScopeInfo `json:"scopes"`
}

// scopeResponse answers GET /v1/scopes/{name}.
type scopeResponse struct {
	BundleRevision string `json:"bundle_revision"`
	*engine.ScopeInfo
}

// normalizeResponse answers POST /v1/scopes/normalize.
type normalizeResponse struct {
	BundleRevision string `json:"bundle_revision"`
	scopeset.Result
}

// catalog returns the engine's revision and catalog, or answers 503.
func (s *Server) catalog(w http.ResponseWriter) (string, *engine.CatalogView, bool) {
	eng := s.engine.Load()
	if eng == nil {
		writeError(w, http.StatusServiceUnavailable, &request.Error{Code: "no_policy", Message: errNoEngine.Error()})
		return "", nil, false
	}
	v, err := eng.Catalog()
	if err != nil {
		s.opts.Logger.Error("catalog unavailable", "revision", eng.Revision(), "error", err)
		writeError(w, http.StatusServiceUnavailable, &request.Error{Code: "no_catalog", Message: "the loaded policy carries no readable catalog"})
		return "", nil, false
	}
	return eng.Revision(), v, true
}

// handleScopes lists the catalog in file order. Filters: ?resource=NAME,
// ?sensitive=true|false.
func (s *Server) handleScopes(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	for k, vs := range q {
		switch {
		case k != "resource" && k != "sensitive":
			writeError(w, http.StatusBadRequest, &request.Error{Code: request.CodeInvalidInput, Field: k, Message: "unknown query parameter (filters: resource, sensitive)"})
			return
		case len(vs) > 1:
			writeError(w, http.StatusBadRequest, &request.Error{Code: request.CodeInvalidInput, Field: k, Message: "given more than once"})
			return
		}
	}
	sensitive := q.Get("sensitive")
	if q.Has("sensitive") && sensitive != "true" && sensitive != "false" {
		writeError(w, http.StatusBadRequest, &request.Error{Code: request.CodeInvalidInput, Field: "sensitive", Message: "must be true or false"})
		return
	}
	revision, v, ok := s.catalog(w)
	if !ok {
		return
	}
	out := catalogResponse{BundleRevision: revision, Version: v.Version(), DefaultScope: v.DefaultScope(), Scopes: []*engine.ScopeInfo{}}
	for _, sc := range v.Scopes() {
		if q.Has("resource") && sc.Resource != q.Get("resource") {
			continue
		}
		if q.Has("sensitive") && sc.Sensitive != (sensitive == "true") {
			continue
		}
		out.Scopes = append(out.Scopes, sc)
	}
	out.Count = len(out.Scopes)
	writeJSON(w, http.StatusOK, out)
}

// handleScope shows one scope: what it includes and implies, and which
// scopes include it or satisfy it.
func (s *Server) handleScope(w http.ResponseWriter, r *http.Request) {
	revision, v, ok := s.catalog(w)
	if !ok {
		return
	}
	name := mux.Vars(r)["name"]
	sc, found := v.Lookup(name)
	if !found {
		msg := fmt.Sprintf("no scope %q in the catalog", truncate(name))
		if len(name) <= request.MaxScopeLen {
			if near := v.Suggest(name); near != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", near)
			}
		}
		writeError(w, http.StatusNotFound, &request.Error{Code: "unknown_scope", Field: "name", Message: msg})
		return
	}
	writeJSON(w, http.StatusOK, scopeResponse{BundleRevision: revision, ScopeInfo: sc})
}

// handleNormalize turns a requested scope list into its minimal equivalent
// and flags what a reviewer should question.
func (s *Server) handleNormalize(w http.ResponseWriter, r *http.Request) {
	scopes, bad := request.DecodeScopeList(http.MaxBytesReader(w, r.Body, request.MaxBodyBytes))
	if bad != nil {
		status := http.StatusBadRequest
		if bad.Code == request.CodeTooLarge {
			status = http.StatusRequestEntityTooLarge
		}
		writeError(w, status, bad)
		return
	}
	revision, v, ok := s.catalog(w)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, normalizeResponse{BundleRevision: revision, Result: scopeset.Normalize(v, scopes)})
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
