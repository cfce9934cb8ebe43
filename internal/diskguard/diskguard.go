// Package diskguard watches the free space of the filesystem that holds the
// decision log. Below a threshold it warns, in the operator log and in a
// metric, while there is still room: when the disk is full the log fails
// and every decision is denied (log_unavailable), so an operator should
// hear about it first.
package diskguard

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"
)

// Guard holds the last free-space reading of one directory's filesystem.
type Guard struct {
	dir    string
	min    int64
	logger *slog.Logger
	free   atomic.Int64 // bytes available to the process; -1 before a reading
	low    atomic.Bool
}

// Start reads the free space of dir's filesystem now and then every
// interval until ctx ends. min is the threshold in bytes (0: never low).
func Start(ctx context.Context, dir string, min int64, interval time.Duration, logger *slog.Logger) *Guard {
	g := &Guard{dir: dir, min: min, logger: logger}
	g.free.Store(-1)
	g.Check()
	go func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				g.Check()
			}
		}
	}()
	return g
}

// Check reads the free space once, warning when it falls below the
// threshold and saying so when it is back above.
func (g *Guard) Check() {
	free, err := freeBytes(g.dir)
	if err != nil {
		g.logger.Warn("cannot read the decision log's free disk space", "dir", g.dir, "error", err)
		return
	}
	g.free.Store(free)
	low := g.min > 0 && free < g.min
	switch was := g.low.Swap(low); {
	case low && !was:
		g.logger.Warn("decision log disk is low on space: free some, or decisions will be denied (log_unavailable) once it is full",
			"dir", g.dir, "free_bytes", free, "min_free_bytes", g.min)
	case !low && was:
		g.logger.Info("decision log disk has room again", "dir", g.dir, "free_bytes", free, "min_free_bytes", g.min)
	}
}

// Free is the last reading in bytes, -1 if none succeeded.
func (g *Guard) Free() int64 { return g.free.Load() }

// Low reports whether the last reading was below the threshold.
func (g *Guard) Low() bool { return g.low.Load() }
