package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"

	"github.com/scopegate/scopegate/internal/decisionlog"
	"github.com/scopegate/scopegate/internal/diskguard"
	"github.com/scopegate/scopegate/internal/logship"
)

// diskCheckEvery is how often the decision log's free disk space is read.
const diskCheckEvery = 10 * time.Second

// decisionLogConfig holds serve's --decision-log-* flags (the path itself is
// serveConfig.decisionLog).
type decisionLogConfig struct {
	mask        []string
	maxBytes    byteSize
	maxAge      dayDuration
	maxFiles    int
	retention   dayDuration
	onFull      string
	sync        string
	flush       time.Duration
	buffer      int
	repairTail  bool
	recover     time.Duration
	remote      string
	remoteToken string
	spool       string
	minFree     byteSize
}

// Rotation is on by default, so the log cannot fill a disk unattended:
// 20 files of 100 MB (2 GB) are kept before the oldest is deleted.
const (
	defaultMaxBytes = 100_000_000
	defaultMaxFiles = 20
	defaultMinFree  = 1 << 30
)

func (c *decisionLogConfig) register(f *pflag.FlagSet) {
	f.StringSliceVar(&c.mask, "decision-log-mask", nil, "also mask this JSON pointer in every record, e.g. /input/resource/owner (repeatable, or comma-separated)")
	c.maxBytes, c.minFree = defaultMaxBytes, defaultMinFree
	f.Var(&c.maxBytes, "decision-log-max-bytes", "rotate the decision log before it grows past this size, e.g. 100MB (0: never)")
	f.Var(&c.maxAge, "decision-log-max-age", "rotate the decision log when its file is this old, e.g. 24h or 1d (0: never)")
	f.IntVar(&c.maxFiles, "decision-log-max-files", defaultMaxFiles, "keep at most this many rotated decision-log files (0: all)")
	f.Var(&c.retention, "decision-log-retention", "delete rotated decision-log files older than this, e.g. 90d (0: keep)")
	f.StringVar(&c.onFull, "decision-log-on-full", "block", "when the decision-log buffer is full: block (wait for room) or fail-closed (deny with log_unavailable)")
	f.StringVar(&c.sync, "decision-log-sync", "always", "answer a decision once its record is fsynced (always), or once written, fsyncing every --decision-log-flush-interval (interval: survives a crash of scopegate, not of the machine)")
	f.DurationVar(&c.flush, "decision-log-flush-interval", 200*time.Millisecond, "how often the decision log is fsynced when nothing else asked for it")
	f.IntVar(&c.buffer, "decision-log-buffer", 4096, "decision-log buffer, in records")
	f.BoolVar(&c.repairTail, "decision-log-repair-tail", false, "at start, cut off a partial last record left by a crash (logged) instead of refusing to start")
	f.DurationVar(&c.recover, "decision-log-recover-after", 5*time.Second, "after a write failure (e.g. disk full) decisions are denied; retry reopening the log this often (negative: never, restart to recover)")
	f.StringVar(&c.remote, "decision-log-remote", "", "also ship the decision log to this OPA-compatible decision-log service (POST <url>/logs, gzip)")
	f.StringVar(&c.remoteToken, "decision-log-remote-token", "", "bearer token for --decision-log-remote (prefer SCOPEGATE_DECISION_LOG_REMOTE_TOKEN)")
	f.StringVar(&c.spool, "decision-log-spool", "", "directory for batches the remote has not accepted yet (default: <decision-log>.spool)")
	f.Var(&c.minFree, "decision-log-min-free", "warn (operator log, scopegate_decision_log_disk_low) when the decision log's disk has less free space than this, e.g. 1GiB (0: never)")
}

// openDecisionLog opens the decision log (and its shipper, with a remote) as
// configured, registers their metrics, and returns the log and a function
// that closes both: the writer first, so the shipper takes its last records.
func openDecisionLog(ctx context.Context, path string, c decisionLogConfig, logger *slog.Logger, reg prometheus.Registerer) (*decisionlog.Writer, func(context.Context), error) {
	masker, err := decisionlog.NewMasker(c.mask...)
	if err != nil {
		return nil, nil, fmt.Errorf("--decision-log-mask: %w", err)
	}
	opts := decisionlog.Options{
		Path:                path,
		BufferSize:          c.buffer,
		MaxBytes:            int64(c.maxBytes),
		MaxAge:              time.Duration(c.maxAge),
		MaxFiles:            c.maxFiles,
		Retention:           time.Duration(c.retention),
		Masker:              masker,
		RepairTruncatedTail: c.repairTail,
		RecoverAfter:        c.recover,
		Logger:              logger,
	}
	switch c.sync {
	case "always":
		opts.Sync = decisionlog.SyncAlways
	case "interval":
		opts.Sync = decisionlog.SyncInterval
	default:
		return nil, nil, fmt.Errorf("--decision-log-sync %q: want always or interval", c.sync)
	}
	if c.flush <= 0 {
		return nil, nil, errors.New("--decision-log-flush-interval must be positive")
	}
	opts.FlushInterval = c.flush
	switch c.onFull {
	case "block":
		opts.OnFull = decisionlog.Block
	case "fail-closed":
		opts.OnFull = decisionlog.FailClosed
	default:
		return nil, nil, fmt.Errorf("--decision-log-on-full %q: want block or fail-closed", c.onFull)
	}
	if c.buffer <= 0 {
		return nil, nil, errors.New("--decision-log-buffer must be at least 1")
	}
	if c.maxFiles < 0 {
		return nil, nil, errors.New("--decision-log-max-files must not be negative")
	}
	if path == "-" {
		// The rotation defaults do not apply to stdout; settings of one do.
		if c.remote != "" || c.maxBytes != defaultMaxBytes && c.maxBytes > 0 || c.maxAge > 0 || c.maxFiles != defaultMaxFiles && c.maxFiles > 0 || c.retention > 0 {
			return nil, nil, errors.New("--decision-log -: rotation, retention and --decision-log-remote need a decision-log file")
		}
		opts.MaxBytes, opts.MaxFiles = 0, 0
	}
	if c.remote == "" && (c.remoteToken != "" || c.spool != "") {
		return nil, nil, errors.New("--decision-log-remote-token and --decision-log-spool need --decision-log-remote")
	}

	w, err := decisionlog.Open(ctx, opts)
	if err != nil {
		if errors.Is(err, decisionlog.ErrTruncatedTail) {
			err = fmt.Errorf("%w\n(start once with --decision-log-repair-tail to cut off the partial record; `scopegate audit verify` checks the rest)", err)
		}
		return nil, nil, fmt.Errorf("open decision log: %w", err)
	}
	var shipper *logship.Shipper
	if c.remote != "" {
		shipper, err = logship.NewShipper(logship.ShipperOptions{
			LogPath:  path,
			URL:      c.remote,
			Token:    c.remoteToken,
			SpoolDir: c.spool,
			Durable:  w.DurableHash,
			Logger:   logger,
		})
		if err != nil {
			_ = w.Close(context.Background())
			return nil, nil, fmt.Errorf("--decision-log-remote: %w", err)
		}
	}
	registerDecisionLogMetrics(reg, w, shipper)
	if path != "-" {
		guard := diskguard.Start(ctx, filepath.Dir(path), int64(c.minFree), diskCheckEvery, logger)
		reg.MustRegister(
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "scopegate_decision_log_disk_free_bytes",
				Help: "Free space on the decision log's filesystem (-1: unknown)."}, func() float64 { return float64(guard.Free()) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "scopegate_decision_log_disk_low",
				Help: "1 while that free space is below --decision-log-min-free: free some before the log fails closed."}, func() float64 {
				if guard.Low() {
					return 1
				}
				return 0
			}),
		)
	}
	closeAll := func(ctx context.Context) {
		if err := w.Close(ctx); err != nil {
			logger.Error("closing decision log", "error", err)
		}
		if shipper != nil {
			if err := shipper.Close(ctx); err != nil {
				logger.Error("closing decision-log shipper", "error", err)
			}
		}
	}
	return w, closeAll, nil
}

func registerDecisionLogMetrics(reg prometheus.Registerer, w *decisionlog.Writer, s *logship.Shipper) {
	counter := func(name, help string, f func() uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return float64(f()) })
	}
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	reg.MustRegister(
		counter("scopegate_decision_log_records_total", "Records written to the decision log.", func() uint64 { return w.Stats().Written }),
		counter("scopegate_decision_log_failed_total", "Records accepted but not written (write or fsync error).", func() uint64 { return w.Stats().Failed }),
		counter("scopegate_decision_log_rejected_total", "Records refused before queueing (buffer full under fail-closed, log failed, closed).", func() uint64 { return w.Stats().Rejected }),
		counter("scopegate_decision_log_fsyncs_total", "fsyncs of the decision log.", func() uint64 { return w.Stats().Syncs }),
		counter("scopegate_decision_log_rotations_total", "Decision-log file rotations.", func() uint64 { return w.Stats().Rotations }),
		counter("scopegate_decision_log_reopens_total", "Times the active decision-log file was found deleted, renamed or replaced under the server, and reopened at its path.", func() uint64 { return w.Stats().Reopens }),
		gauge("scopegate_decision_log_queue_length", "Records waiting in the decision-log buffer.", func() float64 { return float64(w.Stats().QueueLen) }),
		gauge("scopegate_decision_log_healthy", "1 while the decision log accepts records, 0 after a failure (decisions are then denied).", func() float64 {
			if w.Healthy() != nil {
				return 0
			}
			return 1
		}),
	)
	if s == nil {
		return
	}
	reg.MustRegister(
		counter("scopegate_decision_log_shipped_total", "Records accepted by the remote decision-log service.", func() uint64 { return s.Stats().Shipped }),
		counter("scopegate_decision_log_ship_errors_total", "Failed POSTs to the remote decision-log service (each is retried).", func() uint64 { return s.Stats().SendErrors }),
		counter("scopegate_decision_log_ship_gaps_total", "Places where records left the local log before they were shipped.", func() uint64 { return s.Stats().Gaps }),
		gauge("scopegate_decision_log_spool_batches", "Batches waiting in the spool for the remote service.", func() float64 { return float64(s.Stats().SpoolBatches) }),
		gauge("scopegate_decision_log_spool_bytes", "Bytes waiting in the spool for the remote service.", func() float64 { return float64(s.Stats().SpoolBytes) }),
	)
}

// byteSize is a flag value in bytes that also reads 64KB, 100MB, 1GiB.
type byteSize int64

func (b *byteSize) String() string { return strconv.FormatInt(int64(*b), 10) }
func (b *byteSize) Type() string   { return "size" }

func (b *byteSize) Set(s string) error {
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1}}
	num, mult := strings.TrimSpace(s), int64(1)
	for _, u := range units {
		if n, ok := strings.CutSuffix(num, u.suffix); ok {
			num, mult = strings.TrimSpace(n), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return fmt.Errorf("%q: want a size such as 104857600, 100MB or 64MiB", s)
	}
	*b = byteSize(n * mult)
	return nil
}

// dayDuration is a time.Duration flag value that also reads whole days: 90d.
type dayDuration time.Duration

func (d *dayDuration) String() string {
	if *d == 0 {
		return "0"
	}
	return time.Duration(*d).String()
}

func (d *dayDuration) Type() string { return "duration" }

func (d *dayDuration) Set(s string) error {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 0 || n > 100*365 {
			return fmt.Errorf("%q: want a duration such as 90d or 36h", s)
		}
		*d = dayDuration(time.Duration(n) * 24 * time.Hour)
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		return fmt.Errorf("%q: want a duration such as 90d or 36h", s)
	}
	*d = dayDuration(v)
	return nil
}
