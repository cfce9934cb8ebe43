//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package decisionlog

import (
	"io"
	"os"
)

type noLock struct{}

func (noLock) Close() error { return nil }

// LockFile is a no-op where flock is unavailable: run one writer per log.
func LockFile(string) (io.Closer, error) { return noLock{}, nil }

// lockActive is a no-op where flock is unavailable.
func lockActive(*os.File) error { return nil }
