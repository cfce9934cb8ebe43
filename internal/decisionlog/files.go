package decisionlog

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// File naming. The active file is Options.Path, e.g. decisions.log. When it
// rotates it is renamed to <stem>-<UTC time>Z<ext>, e.g.
// decisions-20261123T180501.123Z.log, the time having a fixed width so that
// name order is chain order. The writer never reuses or goes back on a name:
// if the clock says otherwise it takes the newest name plus one millisecond.
// <path>.lock is held (flock) by the writer so that two processes cannot
// fork one chain.
const rotatedLayout = "20060102T150405.000"

type logName struct {
	dir, base, stem, ext string
}

func splitLogPath(path string) logName {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	ext := filepath.Ext(base)
	return logName{dir: filepath.Clean(dir), base: base, stem: strings.TrimSuffix(base, ext), ext: ext}
}

func (n logName) rotatedName(t time.Time) string {
	return n.stem + "-" + t.UTC().Format(rotatedLayout) + "Z" + n.ext
}

// rotatedTime parses the time out of a rotated file name.
func (n logName) rotatedTime(name string) (time.Time, bool) {
	mid, ok := strings.CutPrefix(name, n.stem+"-")
	if !ok {
		return time.Time{}, false
	}
	if mid, ok = strings.CutSuffix(mid, "Z"+n.ext); !ok || len(mid) != len(rotatedLayout) {
		return time.Time{}, false
	}
	t, err := time.ParseInLocation(rotatedLayout, mid, time.UTC)
	return t, err == nil
}

type rotatedFile struct {
	name string // base name
	t    time.Time
}

// listRotated returns the rotated files of n, oldest first.
func listRotated(n logName) ([]rotatedFile, error) {
	entries, err := os.ReadDir(n.dir)
	if err != nil {
		return nil, fmt.Errorf("decisionlog: list %s: %w", n.dir, err)
	}
	var out []rotatedFile
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		if t, ok := n.rotatedTime(e.Name()); ok {
			out = append(out, rotatedFile{name: e.Name(), t: t})
		}
	}
	slices.SortFunc(out, func(a, b rotatedFile) int { return strings.Compare(a.name, b.name) })
	return out, nil
}

// Files returns the log files of the active log file path in chain order:
// the rotated files oldest first, then path itself if it exists.
func Files(path string) ([]string, error) {
	if path == "" || path == "-" {
		return nil, errors.New("decisionlog: files: need a log file path")
	}
	n := splitLogPath(path)
	rotated, err := listRotated(n)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(rotated)+1)
	for _, r := range rotated {
		out = append(out, filepath.Join(n.dir, r.name))
	}
	switch _, err := os.Stat(path); {
	case err == nil:
		out = append(out, path)
	case !errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("decisionlog: files: %w", err)
	}
	return out, nil
}

// maxLine bounds a line when reading logs back, so a corrupt file cannot
// exhaust memory.
const maxLine = 64 << 20

// EachLine calls fn with every line of r (without its newline) and its
// 1-based number; complete is false for a last line that has no newline.
// The line is only valid during the call.
func EachLine(r io.Reader, fn func(n int, line []byte, complete bool) error) error {
	br := bufio.NewReaderSize(r, 64<<10)
	var long []byte
	for n := 1; ; n++ {
		line, err := br.ReadSlice('\n')
		for errors.Is(err, bufio.ErrBufferFull) {
			long = append(long, line...)
			if len(long) > maxLine {
				return fmt.Errorf("line %d: longer than %d bytes", n, maxLine)
			}
			line, err = br.ReadSlice('\n')
		}
		if len(long) > 0 {
			line = append(long, line...)
			long = long[:0]
		}
		switch {
		case err == nil:
			if err := fn(n, line[:len(line)-1], true); err != nil {
				return err
			}
		case errors.Is(err, io.EOF):
			if len(line) > 0 {
				return fn(n, line, false)
			}
			return nil
		default:
			return fmt.Errorf("line %d: %w", n, err)
		}
	}
}

// ReadTail reads the end of f (of the given size) back to a point where it
// contains at least want newlines, or to the start of the file.
func ReadTail(f io.ReaderAt, size int64, want int) (data []byte, off int64, err error) {
	for chunk := int64(64 << 10); ; chunk *= 4 {
		chunk = min(chunk, size)
		off = size - chunk
		data = make([]byte, chunk)
		if _, err := f.ReadAt(data, off); err != nil && !errors.Is(err, io.EOF) {
			return nil, 0, err
		}
		if off == 0 || bytes.Count(data, []byte{'\n'}) >= want {
			return data, off, nil
		}
	}
}

// lineNumber returns the 1-based number of the line starting at offset off.
func lineNumber(f io.ReaderAt, off int64) (int, error) {
	n := 1
	buf := make([]byte, 64<<10)
	r := io.NewSectionReader(f, 0, off)
	for {
		k, err := r.Read(buf)
		n += bytes.Count(buf[:k], []byte{'\n'})
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return 0, err
		}
	}
}

// SyncDir makes a create, rename or remove in dir durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
