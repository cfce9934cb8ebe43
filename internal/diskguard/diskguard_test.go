package diskguard

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestWarnsBelowThreshold: a threshold above the disk's free space warns
// once and reports low; one below it does not.
func TestWarnsBelowThreshold(t *testing.T) {
	var out bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&out, nil))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	g := Start(ctx, t.TempDir(), 1<<62, time.Hour, logger)
	if g.Free() <= 0 || !g.Low() {
		t.Fatalf("free %d, low %v", g.Free(), g.Low())
	}
	g.Check()
	if n := strings.Count(out.String(), "low on space"); n != 1 {
		t.Errorf("warned %d times, want once:\n%s", n, &out)
	}
	g.min = 1
	g.Check()
	if g.Low() || !strings.Contains(out.String(), "has room again") {
		t.Errorf("low %v after the threshold dropped:\n%s", g.Low(), &out)
	}
	if ok := Start(ctx, t.TempDir(), 1, time.Hour, logger); ok.Low() {
		t.Error("a 1-byte threshold reads low")
	}
}
