// Package engine evaluates scope decisions with embedded OPA. The policy is
// compiled and the query prepared once, in New; Decide only evaluates.
package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/topdown"

	"github.com/scopegate/scopegate/internal/source"
)

// Query is the rule every decision reads; Policy names its package.
const (
	Query  = "data.scopegate.authz.decision"
	Policy = "data.scopegate.authz"
)

// Reason codes: stable strings services and auditors match on.
const (
	ReasonAllowed       = "allowed"
	ReasonMissingScope  = "missing_scope"
	ReasonUnknownScope  = "unknown_scope"
	ReasonUnknownAction = "unknown_action"
	ReasonNoScopes      = "no_scopes"
	ReasonInvalidInput  = "invalid_input"
	ReasonPolicyError   = "policy_error"
	// ReasonInvalidToken: the access token was not accepted (expired, bad
	// signature, unknown key, wrong issuer, audience or typ, malformed).
	ReasonInvalidToken = "invalid_token"
	// ReasonMissingToken: a gateway forwarded a request that carried no
	// bearer access token.
	ReasonMissingToken = "missing_token"
	// ReasonTokenUnavailable: the token could not be checked (no verifier
	// configured); a deny, never an allow.
	ReasonTokenUnavailable = "token_unavailable"
)

// Decision is the policy's answer with its explanation.
type Decision struct {
	Allow            bool     `json:"allow"`
	Reason           string   `json:"reason"`
	Action           string   `json:"action,omitempty"`
	Route            string   `json:"route,omitempty"`
	RequiredAnyOf    []string `json:"required_any_of"`
	GrantedEffective []string `json:"granted_effective"`
	Matched          []string `json:"matched"`
	Missing          []string `json:"missing"`
	Narrowest        string   `json:"narrowest,omitempty"`
	UnknownScopes    []string `json:"unknown_scopes,omitempty"`
	// ForeignScopes: the token's scopes the catalog declares foreign (OIDC's
	// openid, ...): they conferred nothing.
	ForeignScopes []string `json:"foreign_scopes,omitempty"`
	Sensitive     bool     `json:"sensitive"`
	Explain       []string `json:"explain"`
	Remedy        string   `json:"remedy,omitempty"`
	// RequestedNotGranted: scopes the app requested (input requested_scopes)
	// that the token does not confer. NarrowedByUser: the deny is because
	// of them (the user granted less than the app asked for).
	RequestedNotGranted []string `json:"requested_not_granted"`
	NarrowedByUser      bool     `json:"narrowed_by_user"`
	// Trace is OPA's evaluation trace, only when asked for.
	Trace []string `json:"trace,omitempty"`
	// WWWAuthenticate is, on a deny, the RFC 6750 section 3.1 challenge a
	// resource server should answer with (challenge.go).
	WWWAuthenticate string `json:"www_authenticate,omitempty"`
}

// Engine holds one prepared policy. It is safe for concurrent use.
type Engine struct {
	query    rego.PreparedEvalQuery
	revision string
	// cache is nil when the policy's decisions are not a pure function of
	// the keyed inputs; noCache says why.
	cache   *decisionCache
	noCache string
	// catalog is read from the data once, for the catalog endpoints
	// (catalogview.go); catalogErr says why there is none.
	catalog    *CatalogView
	catalogErr error
	// actions evaluates data.scopegate.actions on first use (actions.go).
	actions *actionsSource
	// routeKeys, when set, keys cached route decisions on the route the
	// path picks rather than on the path (routes.go); routeNote says why
	// it is not set.
	routeKeys *routeTable
	routeNote string
	// cacheFields are the input fields beyond the always-keyed ones that
	// the policy reads; cached decisions are keyed on their values too.
	cacheFields [][]string
	// logMask is data.system.log.mask prepared, nil if the policy has none
	// (logmask.go).
	logMask *rego.PreparedEvalQuery
	// evalTimeout bounds every evaluation (0: none).
	evalTimeout time.Duration
}

// DefaultCacheBytes bounds the decision cache: about 100,000 typical
// decisions.
const DefaultCacheBytes = 64 << 20

// DefaultEvalTimeout is how long one decision may evaluate before it is
// a policy_error deny: scope decisions take microseconds, so a second
// means the policy is broken or under attack.
const DefaultEvalTimeout = time.Second

type config struct {
	cacheBytes  int64
	evalTimeout time.Duration
}

// Option configures New.
type Option func(*config)

// WithCacheBytes bounds the decision cache in bytes; 0 turns it off.
func WithCacheBytes(n int64) Option { return func(c *config) { c.cacheBytes = n } }

// WithEvalTimeout bounds each evaluation; 0 means no deadline beyond the
// caller's context.
func WithEvalTimeout(d time.Duration) Option { return func(c *config) { c.evalTimeout = d } }

// New compiles src's modules against its data and prepares the decision
// query. Compile errors come back here, never at request time.
func New(ctx context.Context, src *source.Source, options ...Option) (*Engine, error) {
	if src == nil {
		return nil, errors.New("engine: no policy source")
	}
	cfg := config{cacheBytes: DefaultCacheBytes, evalTimeout: DefaultEvalTimeout}
	for _, o := range options {
		o(&cfg)
	}
	// Keep data as AST values so reads do not convert Go maps per decision.
	store := inmem.NewFromObjectWithOpts(src.Data, inmem.OptReturnASTValuesOnRead(true))
	opts := []func(*rego.Rego){
		rego.Query(Query),
		rego.Store(store),
		rego.StoreReadAST(true),
	}
	mods, err := src.Parse(false)
	if err != nil {
		return nil, fmt.Errorf("prepare policy: %w", err)
	}
	parsed := make([]*ast.Module, len(mods))
	for i, m := range mods {
		parsed[i] = m.Parsed
		opts = append(opts, rego.ParsedModule(m.Parsed))
	}
	pq, err := rego.New(opts...).PrepareForEval(ctx)
	if err != nil {
		return nil, fmt.Errorf("prepare policy: %w", err)
	}
	e := &Engine{query: pq, revision: src.Revision, evalTimeout: cfg.evalTimeout}
	if e.logMask, err = prepareLogMask(ctx, store, parsed); err != nil {
		return nil, err
	}
	e.catalog, e.catalogErr = NewCatalogView(src.Data)
	e.actions = &actionsSource{modules: parsed, data: src.Data}
	e.noCache, e.cacheFields = cacheability(decisionModules(parsed))
	switch {
	case cfg.cacheBytes <= 0:
		e.noCache = "cache turned off"
	case e.noCache == "":
		e.cache = newDecisionCache(cfg.cacheBytes)
		e.routeKeys = e.prepareRouteKeys(ctx, store, parsed)
	}
	return e, nil
}

func fieldNames(fields [][]string) []string {
	out := make([]string, len(fields))
	for i, f := range fields {
		out[i] = strings.Join(f, ".")
	}
	return out
}

// prepareRouteKeys returns the route table to key cached decisions on, or
// nil (and why, in routeNote) to key them on the path.
func (e *Engine) prepareRouteKeys(ctx context.Context, store storage.Store, parsed []*ast.Module) *routeTable {
	if e.routeNote = routeKeyability(decisionModules(parsed)); e.routeNote != "" {
		return nil
	}
	t, err := loadRouteTable(ctx, store, parsed)
	if err == nil {
		err = e.checkRouteKeys(ctx, t)
	}
	if err != nil {
		e.routeNote = err.Error()
		return nil
	}
	return t
}

// CacheStats says whether decisions are cached (and if not, why) and how
// often the cache answered.
type CacheStats struct {
	Enabled      bool
	Disabled     string
	Hits, Misses uint64
	// Skipped counts decisions not cached (unknown scopes, invalid input,
	// outsized); Bytes is what the cache holds, as charged to its budget.
	Skipped uint64
	Bytes   int64
	// RouteKeys: route decisions are keyed on the route the path picks,
	// not the path (routes.go); RouteNote says why not.
	RouteKeys bool
	RouteNote string
	// Fields are the other input fields decisions are keyed on, because the
	// policy reads them (e.g. resource.owner, subject).
	Fields []string
}

// CacheStats reports the decision cache's state.
func (e *Engine) CacheStats() CacheStats {
	if e == nil {
		return CacheStats{Disabled: "no policy loaded"}
	}
	if e.cache == nil {
		return CacheStats{Disabled: e.noCache}
	}
	hits, misses, skipped := e.cache.Stats()
	return CacheStats{Enabled: true, Hits: hits, Misses: misses,
		Skipped: skipped, Bytes: e.cache.bytes(), RouteKeys: e.routeKeys != nil, RouteNote: e.routeNote,
		Fields: fieldNames(e.cacheFields)}
}

// Revision is the revision of the policy and data this engine evaluates.
func (e *Engine) Revision() string { return e.revision }

// Options tune one evaluation.
type Options struct {
	// Trace asks for OPA's pretty-printed evaluation trace.
	Trace bool
}

// Decide evaluates input. It always returns a usable decision: on any
// evaluation error or an undefined result the decision is a deny with
// reason policy_error, and the error says what went wrong.
func (e *Engine) Decide(ctx context.Context, input ast.Value, opt Options) (Decision, error) {
	if e == nil {
		return Deny(ReasonPolicyError, "no policy loaded"), errors.New("engine: no policy loaded")
	}
	evalOpts := []rego.EvalOption{rego.EvalParsedInput(input)}
	var tracer *topdown.BufferTracer
	if opt.Trace {
		tracer = topdown.NewBufferTracer()
		evalOpts = append(evalOpts, rego.EvalQueryTracer(tracer))
	}
	// ours: the decision deadline, not an earlier one of the caller's (an
	// activation's), is the one that can expire; the message names it.
	ours := false
	if e.evalTimeout > 0 {
		caller, bounded := ctx.Deadline()
		ours = !bounded || time.Until(caller) > e.evalTimeout
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, e.evalTimeout)
		defer cancel()
	}
	rs, err := e.query.Eval(ctx, evalOpts...)
	if err != nil {
		if ctx.Err() != nil {
			// OPA reports cancellation as "eval_cancel_error"; say which
			// bound was hit, so operators can tell a slow policy from a
			// dropped client.
			why := "the caller went away"
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				why = "exceeded its deadline"
				if ours {
					why += " (" + e.evalTimeout.String() + ")"
				}
			}
			return Deny(ReasonPolicyError, "policy evaluation "+why+": denied"), fmt.Errorf("evaluate %s: %s: %w", Query, why, err)
		}
		return Deny(ReasonPolicyError, "policy evaluation failed: "+err.Error()), fmt.Errorf("evaluate %s: %w", Query, err)
	}
	if len(rs) != 1 || len(rs[0].Expressions) != 1 {
		return Deny(ReasonPolicyError, Query+" is undefined for this input"), fmt.Errorf("evaluate %s: undefined result", Query)
	}
	d, err := decode(rs[0].Expressions[0].Value)
	if err != nil {
		return Deny(ReasonPolicyError, "policy returned a malformed decision: "+err.Error()), err
	}
	if tracer != nil {
		var buf bytes.Buffer
		topdown.PrettyTraceWithLocation(&buf, *tracer)
		d.Trace = strings.Split(strings.TrimRight(buf.String(), "\n"), "\n")
	}
	d = d.withoutJWTs()
	d.WWWAuthenticate = challenge(&d)
	return d, nil
}

// Deny is a fail-closed decision carrying why.
func Deny(reason, why string) Decision {
	d := Decision{
		Allow:            false,
		Reason:           reason,
		RequiredAnyOf:    []string{},
		GrantedEffective: []string{},
		Matched:          []string{},
		Missing:          []string{},
		Explain:          []string{why},

		RequestedNotGranted: []string{},
	}.withoutJWTs() // why may quote what the caller sent
	d.WWWAuthenticate = challenge(&d)
	return d
}

// decode reads the policy's decision object. Anything off - a missing or
// mistyped field - is an error, so a broken policy cannot produce an allow.
func decode(v any) (Decision, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return Decision{}, fmt.Errorf("decision is %T, want object", v)
	}
	var d Decision
	r := reader{m: m}
	d.Allow = r.boolean("allow")
	d.Reason = r.str("reason")
	d.Action = r.str("action")
	d.Route = r.str("route")
	d.RequiredAnyOf = r.strings("required_any_of")
	d.GrantedEffective = r.strings("granted_effective")
	d.Matched = r.strings("matched")
	d.Missing = r.strings("missing")
	d.Narrowest = r.str("narrowest")
	d.UnknownScopes = r.strings("unknown_scopes")
	d.Sensitive = r.boolean("sensitive")
	d.Explain = r.strings("explain")
	d.Remedy = r.str("remedy")
	// The requested-vs-granted fields came after the first contract: a
	// policy (or bundle) written before them still decides, without them.
	d.RequestedNotGranted = []string{}
	if _, ok := m["requested_not_granted"]; ok {
		d.RequestedNotGranted = r.strings("requested_not_granted")
	}
	if _, ok := m["narrowed_by_user"]; ok {
		d.NarrowedByUser = r.boolean("narrowed_by_user")
	}
	if _, ok := m["foreign_scopes"]; ok {
		d.ForeignScopes = r.strings("foreign_scopes")
	}
	if r.err != nil {
		return Decision{}, r.err
	}
	if d.Reason == "" {
		return Decision{}, errors.New("decision has an empty reason")
	}
	if d.Allow != (d.Reason == ReasonAllowed) {
		return Decision{}, fmt.Errorf("decision allow=%v contradicts reason %q", d.Allow, d.Reason)
	}
	if d.NarrowedByUser && d.Allow {
		return Decision{}, errors.New("decision is an allow narrowed by the user")
	}
	return d, nil
}

type reader struct {
	m   map[string]any
	err error
}

func (r *reader) get(key string) (any, bool) {
	v, ok := r.m[key]
	if !ok && r.err == nil {
		r.err = fmt.Errorf("decision lacks %q", key)
	}
	return v, ok
}

func (r *reader) fail(key string, v any, want string) {
	if r.err == nil {
		r.err = fmt.Errorf("decision field %q is %T, want %s", key, v, want)
	}
}

func (r *reader) boolean(key string) bool {
	v, ok := r.get(key)
	b, isBool := v.(bool)
	if ok && !isBool {
		r.fail(key, v, "boolean")
	}
	return b
}

func (r *reader) str(key string) string {
	v, ok := r.get(key)
	s, isStr := v.(string)
	if ok && !isStr {
		r.fail(key, v, "string")
	}
	return s
}

func (r *reader) strings(key string) []string {
	v, ok := r.get(key)
	if !ok {
		return nil
	}
	arr, isArr := v.([]any)
	if !isArr {
		r.fail(key, v, "array of strings")
		return nil
	}
	out := make([]string, len(arr))
	for i, x := range arr {
		s, isStr := x.(string)
		if !isStr {
			r.fail(key, v, "array of strings")
			return nil
		}
		out[i] = s
	}
	return out
}

// DecideInput evaluates a decoded request; see Decide. When the policy is
// cacheable, a repeated question is answered from the cache (traced
// evaluations always run). The returned decision's slices are shared with
// the cache: callers must not modify them.
func (e *Engine) DecideInput(ctx context.Context, in Input, opt Options) (Decision, error) {
	if e == nil {
		return e.Decide(ctx, nil, opt)
	}
	var key string
	if e.cache != nil && !opt.Trace {
		key = e.cacheKey(in)
		if d, ok := e.cache.get(key); ok {
			return d, nil
		}
	}
	v, err := in.Value()
	if err != nil {
		return Deny(ReasonPolicyError, "input could not be converted: "+err.Error()), err
	}
	d, err := e.Decide(ctx, v, opt)
	if err == nil && key != "" {
		e.cache.put(key, d)
	}
	return d, err
}
