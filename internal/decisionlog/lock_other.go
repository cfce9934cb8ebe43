//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package decisionlog

import "io"

type noLock struct{}

func (noLock) Close() error { return nil }

// lockLog is a no-op where flock is unavailable: run one writer per log.
func lockLog(string) (io.Closer, error) { return noLock{}, nil }
