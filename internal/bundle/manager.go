package bundle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/scopegate/scopegate/internal/engine"
	"github.com/scopegate/scopegate/internal/policycheck"
	"github.com/scopegate/scopegate/internal/policytest"
	"github.com/scopegate/scopegate/internal/source"
)

// ManagerOptions configure a Manager.
type ManagerOptions struct {
	// OnActivate receives each new good engine (server.SetEngine).
	OnActivate func(*engine.Engine)
	// RunTests runs the bundle's own Rego tests before activating it; any
	// failing test refuses the bundle.
	RunTests bool
	// Logger reports activations and refusals.
	Logger *slog.Logger
	// Registerer takes the bundle metrics; nil registers none.
	Registerer prometheus.Registerer
	// Now is the clock; defaults to time.Now.
	Now func() time.Time
	// EngineOptions are passed to engine.New for every activation.
	EngineOptions []engine.Option
	// ActivationTimeout bounds one activation: compile, smoke decision and
	// tests. A bundle that does not finish in time is refused. Default 60s.
	ActivationTimeout time.Duration
}

// DefaultActivationTimeout bounds an activation when none is configured.
const DefaultActivationTimeout = time.Minute

// Failure is the last refused bundle.
type Failure struct {
	Stage   string    `json:"stage"`
	Message string    `json:"message"`
	Source  string    `json:"source"`
	Time    time.Time `json:"time"`
}

// State is what /ready reports about policy loading.
type State struct {
	// Revision of the active policy; empty until one is active.
	Revision string `json:"revision,omitempty"`
	// Source the active policy came from.
	Source string `json:"source,omitempty"`
	// ActivatedAt is when the active policy was swapped in.
	ActivatedAt *time.Time `json:"activated_at,omitempty"`
	// ActivationMS is how long its compile (and tests) took.
	ActivationMS float64 `json:"activation_ms,omitempty"`
	// LastError is the latest refusal; it is cleared by the next activation.
	LastError *Failure `json:"last_error,omitempty"`
	// Activations and Failures count since start.
	Activations int64 `json:"activations"`
	Failures    int64 `json:"failures"`
}

// Manager owns the active engine. A bundle becomes active only once it has
// compiled, answered a smoke decision and (optionally) passed its tests; a
// refused bundle leaves the active one in place.
type Manager struct {
	opts    ManagerOptions
	metrics *managerMetrics

	activateMu sync.Mutex // one activation at a time, so swaps keep their order

	mu      sync.Mutex
	state   State
	current *engine.Engine
}

// NewManager returns a manager with no active policy.
func NewManager(opts ManagerOptions) *Manager {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.ActivationTimeout <= 0 {
		opts.ActivationTimeout = DefaultActivationTimeout
	}
	return &Manager{opts: opts, metrics: newManagerMetrics(opts.Registerer)}
}

// Engine returns the active engine, or nil.
func (m *Manager) Engine() *engine.Engine {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.current
}

// State returns a copy of the loading state.
func (m *Manager) State() State {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.state
	if s.LastError != nil {
		f := *s.LastError
		s.LastError = &f
	}
	if s.ActivatedAt != nil {
		t := *s.ActivatedAt
		s.ActivatedAt = &t
	}
	return s
}

// ReadyStatus is State shaped for server.Options.Status: the details, and
// the last error's message when there is one.
func (m *Manager) ReadyStatus() (any, string) {
	s := m.State()
	msg := ""
	if s.LastError != nil {
		msg = s.LastError.Stage + ": " + s.LastError.Message
	}
	return s, msg
}

// Activate compiles src, checks it and swaps it in. On any error the
// active engine stays, the error is recorded and returned.
func (m *Manager) Activate(ctx context.Context, src *source.Source, origin string) error {
	m.activateMu.Lock()
	defer m.activateMu.Unlock()
	start := m.opts.Now()
	actx, cancel := context.WithTimeout(ctx, m.opts.ActivationTimeout)
	eng, err := m.prepare(actx, src)
	cancel()
	if err != nil {
		m.Fail(origin, err)
		return err
	}
	took := m.opts.Now().Sub(start)
	tookMS := float64(took.Microseconds()) / 1000

	m.mu.Lock()
	prev := m.state.Revision
	m.current = eng
	now := m.opts.Now()
	m.state.Revision = eng.Revision()
	m.state.Source = origin
	m.state.ActivatedAt = &now
	m.state.ActivationMS = tookMS
	m.state.LastError = nil
	m.state.Activations++
	if m.opts.OnActivate != nil {
		m.opts.OnActivate(eng)
	}
	m.mu.Unlock()

	m.metrics.activated(prev, eng.Revision(), now, took)
	m.opts.Logger.Info("policy activated", "revision", eng.Revision(), "previous_revision", prev,
		"source", origin, "modules", len(src.Modules), "tests", len(src.Tests), "activation_ms", tookMS)
	return nil
}

func (m *Manager) prepare(ctx context.Context, src *source.Source) (*engine.Engine, error) {
	if src == nil {
		return nil, stageErr(StageValidate, errors.New("no policy source"))
	}
	eng, err := engine.New(ctx, src, m.opts.EngineOptions...)
	if err != nil {
		return nil, stageErr(StageCompile, err)
	}
	// Policies written for another catalog compile and decide, wrongly:
	// every action naming a scope this catalog lacks is a policy_error.
	if problems, err := policycheck.Check(ctx, src); err != nil {
		return nil, stageErr(StageValidate, err)
	} else if len(problems) > 0 {
		return nil, stageErr(StageValidate, fmt.Errorf("the policies do not match the catalog (served with another catalog's policies?):\n%w", problems))
	}
	if err := smoke(ctx, eng, src); err != nil {
		return nil, stageErr(StageCompile, err)
	}
	if m.opts.RunTests {
		results, err := policytest.Run(ctx, src)
		if err == nil && ctx.Err() != nil {
			err = fmt.Errorf("tests did not finish within the activation deadline: %w", ctx.Err())
		}
		if err != nil {
			return nil, stageErr(StageTest, err)
		}
		var failed []string
		for _, r := range results {
			if !r.Pass() && !r.Skip {
				failed = append(failed, r.Package+"."+r.Name)
			}
		}
		if len(failed) > 0 {
			return nil, stageErr(StageTest, fmt.Errorf("%d of %d Rego tests failed: %s", len(failed), len(results), strings.Join(failed, ", ")))
		}
	}
	return eng, nil
}

// smoke asks the compiled policy one question, so a policy that compiles
// but cannot produce a well-formed decision is refused before it serves.
func smoke(ctx context.Context, eng *engine.Engine, src *source.Source) error {
	action := "public"
	if sg, ok := src.Data[Root].(map[string]any); ok {
		if cat, ok := sg["catalog"].(map[string]any); ok {
			if def, ok := cat["default_scope"].(string); ok && def != "" {
				action = def
			}
		}
	}
	if _, err := eng.DecideInput(ctx, engine.Input{GrantedScopes: []string{}, Action: action}, engine.Options{}); err != nil {
		return fmt.Errorf("smoke decision (no scopes, action %q): %w", action, err)
	}
	return nil
}

// Fail records a bundle that was refused before Activate (fetch, read,
// verify, validate). The active engine is untouched.
func (m *Manager) Fail(origin string, err error) {
	stage := StageOf(err)
	if stage == "" {
		stage = StageFetch
	}
	msg := err.Error()
	var le *LoadError
	if errors.As(err, &le) {
		msg = le.Err.Error()
	}
	now := m.opts.Now()
	m.mu.Lock()
	m.state.LastError = &Failure{Stage: stage, Message: msg, Source: origin, Time: now}
	m.state.Failures++
	active := m.state.Revision
	m.mu.Unlock()
	m.metrics.failed(stage, now)
	if active != "" {
		m.opts.Logger.Error("policy refused; keeping the active one", "stage", stage, "error", msg, "source", origin, "active_revision", active)
	} else {
		m.opts.Logger.Error("policy refused; no policy is active, every decision is denied", "stage", stage, "error", msg, "source", origin)
	}
}

type managerMetrics struct {
	loads       *prometheus.CounterVec
	failures    *prometheus.CounterVec
	revision    *prometheus.GaugeVec
	lastSuccess prometheus.Gauge
	lastFailure prometheus.Gauge
	activation  prometheus.Gauge
}

func newManagerMetrics(reg prometheus.Registerer) *managerMetrics {
	m := &managerMetrics{
		loads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "scopegate_bundle_loads_total",
			Help: "Policy bundle loads, by result (success or failure).",
		}, []string{"result"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "scopegate_bundle_load_failures_total",
			Help: "Refused policy bundles, by stage (fetch, read, verify, validate, compile, test).",
		}, []string{"stage"}),
		revision: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "scopegate_bundle_revision_info",
			Help: "1 for the revision of the active policy.",
		}, []string{"revision"}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "scopegate_bundle_last_success_timestamp_seconds",
			Help: "When the active policy was activated (Unix time).",
		}),
		lastFailure: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "scopegate_bundle_last_failure_timestamp_seconds",
			Help: "When a bundle was last refused (Unix time).",
		}),
		activation: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "scopegate_bundle_activation_seconds",
			Help: "How long the active policy took to compile, check and swap in.",
		}),
	}
	m.loads.WithLabelValues("success")
	m.loads.WithLabelValues("failure")
	if reg != nil {
		reg.MustRegister(m.loads, m.failures, m.revision, m.lastSuccess, m.lastFailure, m.activation)
	}
	return m
}

func (m *managerMetrics) activated(prev, rev string, at time.Time, took time.Duration) {
	m.loads.WithLabelValues("success").Inc()
	if prev != "" && prev != rev {
		m.revision.DeleteLabelValues(prev)
	}
	m.revision.WithLabelValues(rev).Set(1)
	m.lastSuccess.Set(float64(at.UnixNano()) / 1e9)
	m.activation.Set(took.Seconds())
}

func (m *managerMetrics) failed(stage string, at time.Time) {
	m.loads.WithLabelValues("failure").Inc()
	m.failures.WithLabelValues(stage).Inc()
	m.lastFailure.Set(float64(at.UnixNano()) / 1e9)
}
