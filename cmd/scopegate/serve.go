package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/scopegate/scopegate/internal/bundle"
	"github.com/scopegate/scopegate/internal/connlimit"
	"github.com/scopegate/scopegate/internal/engine"
	"github.com/scopegate/scopegate/internal/server"
	"github.com/scopegate/scopegate/internal/source"
)

type serveConfig struct {
	addr            string
	catalog         string
	policies        string
	decisionLog     string
	dl              decisionLogConfig
	logLevel        string
	shutdownTimeout time.Duration
	security        securityConfig

	bundle            string
	bundlePoll        time.Duration
	bundleRunTests    bool
	bundleToken       string
	verificationKey   string
	verificationKeyID string
	verificationAlg   string

	cacheBytes        byteSize
	bundleMaxBytes    byteSize
	decisionTimeout   time.Duration
	activationTimeout time.Duration

	tokens  tokenFlags
	gateway gatewayConfig
}

func newServeCmd() *cobra.Command {
	var cfg serveConfig
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve POST /v1/decide on the catalog and policies",
		Long: `serve compiles the policies against the catalog once, then answers
POST /v1/decide, GET /health, GET /ready and GET /metrics. Every decision is
written to the decision log before it is answered.

With --bundle it serves an OPA bundle instead (a directory, a .tar.gz or an
http(s) URL), polls it every --bundle-poll and swaps in each new revision that
reads, verifies (--verification-key), compiles and, with --bundle-run-tests,
passes its own Rego tests. A refused bundle never replaces the active one; with
none active every decision is a deny (policy_error) and /ready answers 503.

Every flag can also be set as SCOPEGATE_<FLAG> (e.g. SCOPEGATE_ADDR).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cfg.bundle != "" && (cmd.Flags().Changed("catalog") || cmd.Flags().Changed("policies")) {
				return errors.New("give --bundle or --catalog/--policies, not both")
			}
			if cfg.bundle == "" && cfg.verificationKey != "" {
				return errors.New("--verification-key needs --bundle")
			}
			return serve(cmd.Context(), cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.addr, "addr", "127.0.0.1:8282", "address to listen on")
	f.StringVar(&cfg.catalog, "catalog", "scopes.yaml", "scope catalog")
	f.StringVar(&cfg.policies, "policies", "", policiesHelp)
	f.StringVar(&cfg.decisionLog, "decision-log", "decisions.log", "decision log file, or - for stdout")
	cfg.dl.register(f)
	f.StringVar(&cfg.logLevel, "log-level", "info", "operator log level: debug, info, warn, error")
	f.DurationVar(&cfg.shutdownTimeout, "shutdown-timeout", 10*time.Second, "how long to drain requests on SIGTERM")
	addSecurityFlags(f, &cfg.security)
	f.StringVar(&cfg.bundle, "bundle", "", "serve this OPA bundle (directory, .tar.gz or http(s) URL) instead of --catalog/--policies")
	f.DurationVar(&cfg.bundlePoll, "bundle-poll", 30*time.Second, "how often to check --bundle for a new revision (0: load once)")
	f.BoolVar(&cfg.bundleRunTests, "bundle-run-tests", false, "run the policy's Rego tests before activating it; refuse it if any fails")
	f.StringVar(&cfg.bundleToken, "bundle-token", "", "bearer token for an http(s) --bundle (prefer SCOPEGATE_BUNDLE_TOKEN)")
	f.StringVar(&cfg.verificationKey, "verification-key", "", "refuse bundles not signed with this key (PEM public key, or HMAC secret file)")
	f.StringVar(&cfg.verificationKeyID, "verification-key-id", bundle.DefaultKeyID, "name of the verification key")
	f.StringVar(&cfg.verificationAlg, "verification-alg", "RS256", "signature algorithm: RS256, ES256, HS256, ...")
	cfg.bundleMaxBytes = bundle.DefaultFileSizeLimit
	f.Var(&cfg.bundleMaxBytes, "bundle-max-bytes", "refuse a bundle whose archive, or whose files once decompressed, exceed this size, e.g. 64MiB")
	cfg.cacheBytes = engine.DefaultCacheBytes
	f.Var(&cfg.cacheBytes, "decision-cache-bytes", "memory for cached decisions, keys included, e.g. 64MiB (0: no cache)")
	cfg.tokens.register(f)
	cfg.gateway.register(f)
	f.DurationVar(&cfg.decisionTimeout, "decision-timeout", engine.DefaultEvalTimeout, "deadline for one policy evaluation; past it the decision is a deny (policy_error)")
	f.DurationVar(&cfg.activationTimeout, "activation-timeout", bundle.DefaultActivationTimeout, "deadline for activating a policy (compile, smoke decision, --bundle-run-tests); past it the policy is refused")
	return cmd
}

// labels go into every decision-log record. gateway_dry_run tells an
// auditor that a gateway's denies in this server's records were let
// through.
func labels(host string, dryRun bool) map[string]string {
	l := map[string]string{"app": "scopegate", "version": version, "hostname": host}
	if dryRun {
		l["gateway_dry_run"] = "true"
	}
	return l
}

func serve(ctx context.Context, cfg serveConfig) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	logger := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	start := time.Now()
	if cfg.bundlePoll < 0 {
		return errors.New("--bundle-poll must not be negative")
	}
	if cfg.decisionTimeout <= 0 || cfg.activationTimeout <= 0 {
		return errors.New("--decision-timeout and --activation-timeout must be positive")
	}
	if cfg.cacheBytes < 0 {
		return errors.New("--decision-cache-bytes must not be negative")
	}
	tokens, err := cfg.tokens.config()
	if err != nil {
		return err
	}
	if tokens != nil {
		prefetch(ctx, tokens, logger)
	}
	reg := prometheus.NewRegistry()
	if tokens != nil {
		registerTokenMetrics(reg, tokens)
	}
	var srvRef atomic.Pointer[server.Server]
	mgr := bundle.NewManager(bundle.ManagerOptions{
		OnActivate: func(e *engine.Engine) {
			if s := srvRef.Load(); s != nil {
				s.SetEngine(e)
			}
		},
		RunTests:          cfg.bundleRunTests,
		Logger:            logger,
		Registerer:        reg,
		ActivationTimeout: cfg.activationTimeout,
		EngineOptions: []engine.Option{
			engine.WithCacheBytes(int64(cfg.cacheBytes)), engine.WithEvalTimeout(cfg.decisionTimeout),
		},
	})
	var watcher *bundle.Watcher
	if cfg.bundle == "" {
		cfg.policies = policiesFor(cfg.catalog, cfg.policies)
		src, err := source.FromFiles(cfg.catalog, cfg.policies)
		if err != nil {
			return fmt.Errorf("load policy: %w", err)
		}
		if err := mgr.Activate(ctx, src, cfg.catalog+" + "+cfg.policies); err != nil {
			return err
		}
		logger.Info("policy loaded", "revision", src.Revision, "catalog", cfg.catalog, "policies", cfg.policies,
			"scopes", len(src.Catalog.Scopes), "load_ms", time.Since(start).Milliseconds())
	} else {
		if cfg.bundleMaxBytes <= 0 {
			return errors.New("--bundle-max-bytes must be positive")
		}
		load := bundle.LoadOptions{SizeLimit: int64(cfg.bundleMaxBytes)}
		if cfg.verificationKey != "" {
			vc, err := bundle.NewVerificationConfig(bundle.VerificationOptions{
				KeyFile: cfg.verificationKey, Algorithm: cfg.verificationAlg, KeyID: cfg.verificationKeyID,
			})
			if err != nil {
				return err
			}
			load.Verification = vc
		}
		var err error
		watcher, err = bundle.NewWatcher(cfg.bundle, mgr, bundle.WatchOptions{
			Load: load, Interval: cfg.bundlePoll, BearerToken: cfg.bundleToken, Logger: logger, MaxBytes: int64(cfg.bundleMaxBytes),
		})
		if err != nil {
			return err
		}
		// The first bundle is polled once serving: a slow or wedged bundle
		// must not keep /health from answering (/ready says 503 until one
		// is active, and every decision is a policy_error deny).
	}
	firstPoll := func(ctx context.Context) {
		if _, err := watcher.Poll(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			if cfg.bundlePoll > 0 {
				logger.Warn("no policy active: serving denials (policy_error) until a good bundle loads",
					"bundle", watcher.Origin(), "retry_every", cfg.bundlePoll.String())
			} else {
				logger.Warn("no policy active and --bundle-poll is 0: every decision is denied (policy_error) until restarted",
					"bundle", watcher.Origin())
			}
		} else {
			logger.Info("policy loaded", "revision", mgr.State().Revision, "bundle", watcher.Origin(),
				"signature_verified", cfg.verificationKey != "", "load_ms", time.Since(start).Milliseconds())
		}
	}

	dlog, closeDecisionLog, err := openDecisionLog(ctx, cfg.decisionLog, cfg.dl, logger, reg)
	if err != nil {
		return err
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.Background(), cfg.shutdownTimeout)
		defer cancel()
		closeDecisionLog(closeCtx) // flush, fsync, then ship what the remote will take
	}()

	host, _ := os.Hostname()
	authn, tlsCfg, err := cfg.security.build(cfg.addr, logger)
	if err != nil {
		return err
	}
	srv := server.New(mgr.Engine(), server.Options{
		Auth:       authn,
		Log:        dlog,
		Logger:     logger,
		Labels:     labels(host, cfg.gateway.dryRun),
		Registerer: reg,
		Gatherer:   reg,
		Status:     mgr.ReadyStatus,
		// The auditor endpoints and /ui read the log back from here.
		DecisionLogPath: cfg.decisionLog,
		AllowedHosts:    cfg.security.hostsAllowed(cfg.addr),
		Tokens:          tokens,
		GatewayDryRun:   cfg.gateway.dryRun,
	})
	// The watcher starts only below, so no activation is missed in between.
	srvRef.Store(srv)
	go srv.IndexLog(ctx, time.Second) // the auditor endpoints' index, kept current
	if cfg.security.maxConns < 1 || cfg.security.pressureIdle <= 0 {
		return errors.New("--max-connections and --idle-timeout-under-pressure must be positive")
	}
	gate := connlimit.New(cfg.security.maxConns, cfg.security.pressureIdle)
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "scopegate_connections_open", Help: "Client connections open now."},
			func() float64 { return float64(gate.Open()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "scopegate_connections_shed_total",
			Help: "Idle connections closed to stay under --max-connections or, under pressure, past --idle-timeout-under-pressure."},
			func() float64 { return float64(gate.Shed()) }),
	)
	httpSrv := &http.Server{
		Handler:           srv,
		ReadHeaderTimeout: cfg.security.readHeaderTimeout,
		ReadTimeout:       cfg.security.readTimeout,
		WriteTimeout:      cfg.security.writeTimeout,
		IdleTimeout:       cfg.security.idleTimeout,
		MaxHeaderBytes:    16 << 10,
		ConnState:         gate.ConnState,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	if tlsCfg != nil {
		ln = tls.NewListener(ln, tlsCfg)
	}
	if cfg.gateway.dryRun {
		logger.Warn("--gateway-dry-run: forwarded requests are let through whatever the decision; the log records what would have been denied")
	}
	if cfg.gateway.grpcAddr != "" {
		_, stopGRPC, err := serveGRPC(cfg.gateway, srv, func() bool { return srv.Engine() != nil }, authn, tlsCfg, cfg.security.maxConns, logger)
		if err != nil {
			ln.Close()
			return err
		}
		defer func() {
			stopCtx, cancel := context.WithTimeout(context.Background(), cfg.shutdownTimeout)
			defer cancel()
			stopGRPC(stopCtx)
		}()
	}
	logger.Info("listening", "addr", ln.Addr().String(), "tls", tlsCfg != nil, "auth", authn.Enabled(), "decision_log", cfg.decisionLog, "startup_ms", time.Since(start).Milliseconds())

	if watcher != nil {
		watchCtx, stopWatch := context.WithCancel(ctx)
		watchDone := make(chan struct{})
		go func() {
			defer close(watchDone)
			firstPoll(watchCtx)
			watcher.Run(watchCtx)
		}()
		defer func() {
			stopWatch()
			<-watchDone
		}()
	}

	errc := make(chan error, 1)
	go func() { errc <- httpSrv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	logger.Info("shutting down: draining requests")
	shutCtx, cancel := context.WithTimeout(context.Background(), cfg.shutdownTimeout)
	defer cancel()
	if err := httpSrv.Shutdown(shutCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}
