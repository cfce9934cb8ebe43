package server

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/scopegate/scopegate/internal/engine"
)

type metrics struct {
	decisions *prometheus.CounterVec
	latency   prometheus.Histogram
	panics    prometheus.Counter

	authFailures *prometheus.CounterVec
	dryRunDenies prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "scopegate_decisions_total",
			Help: "Decisions answered, by reason code and outcome.",
		}, []string{"reason", "allow"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "scopegate_decision_duration_seconds",
			Help:    "Time from request to answer for /v1/decide, decision logging included.",
			Buckets: []float64{25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 50e-3},
		}),
		panics: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "scopegate_panics_total",
			Help: "Panics recovered while serving; each was answered as a deny or an error.",
		}),
	}
	m.authFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "scopegate_auth_failures_total",
		Help: "Requests refused for lack of credentials (unauthenticated) or role (forbidden).",
	}, []string{"result"})
	m.dryRunDenies = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "scopegate_gateway_dry_run_denies_total",
		Help: "Gateway requests let through only because of --gateway-dry-run: each was a deny.",
	})
	reg.MustRegister(m.decisions, m.latency, m.panics, m.authFailures, m.dryRunDenies)
	return m
}

func (m *metrics) observe(reason string, allow bool, d time.Duration) {
	m.decisions.WithLabelValues(reason, strconv.FormatBool(allow)).Inc()
	m.latency.Observe(d.Seconds())
}

// registerCacheMetrics exposes the active engine's decision cache.
func registerCacheMetrics(reg prometheus.Registerer, stats func() engine.CacheStats) {
	counter := func(name, help string, f func(engine.CacheStats) uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return float64(f(stats())) })
	}
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "scopegate_decision_cache_bytes",
			Help: "Memory the decision cache holds, as charged to --decision-cache-bytes."}, func() float64 { return float64(stats().Bytes) }),
		counter("scopegate_decision_cache_hits_total", "Decisions answered from the cache (this policy revision).", func(s engine.CacheStats) uint64 { return s.Hits }),
		counter("scopegate_decision_cache_misses_total", "Decisions evaluated, cache consulted (this policy revision).", func(s engine.CacheStats) uint64 { return s.Misses }),
		counter("scopegate_decision_cache_skipped_total", "Decisions not cached: unknown scopes, invalid input, outsized (this policy revision).", func(s engine.CacheStats) uint64 { return s.Skipped }),
	)
}
