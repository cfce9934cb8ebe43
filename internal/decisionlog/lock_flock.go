//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package decisionlog

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
)

// LockFile takes an exclusive, non-blocking flock on path so that a second
// writer (another process, or a second Open in this one) fails instead of
// forking the chain. The kernel drops the lock if the process dies.
func LockFile(path string) (io.Closer, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("decisionlog: lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("decisionlog: %s is held by another writer", path)
		}
		return nil, fmt.Errorf("decisionlog: lock %s: %w", path, err)
	}
	return f, nil
}

// lockActive takes an exclusive, non-blocking flock on the open active
// file itself. The .lock file guards a path name; this guards the file
// (its inode), so a second writer that reaches it through a symlink or a
// hard link, under another name, is refused too. Closing f releases it.
func lockActive(f *os.File) error {
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return fmt.Errorf("decisionlog: %s is being written by another writer (through another name, a link?)", f.Name())
		}
		return fmt.Errorf("decisionlog: lock %s: %w", f.Name(), err)
	}
	return nil
}
