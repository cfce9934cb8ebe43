package decisionlog

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/scopegate/scopegate/internal/redact"
)

// FullPolicy says what Log does when the queue is full.
type FullPolicy int

const (
	// Block applies back-pressure: Log waits for room until its context is done.
	Block FullPolicy = iota
	// FailClosed makes Log return ErrUnavailable at once.
	FailClosed
)

// SyncPolicy says what LogDurable waits for.
type SyncPolicy int

const (
	// SyncAlways: LogDurable returns once the record is fsynced. An
	// acknowledged decision survives a process crash and a power loss.
	SyncAlways SyncPolicy = iota
	// SyncInterval: LogDurable returns once the record is written to the
	// file (in the kernel's page cache), and the file is fsynced every
	// FlushInterval and at Close. An acknowledged decision survives a crash
	// or kill -9 of the process; a power loss or kernel crash can lose the
	// records of the last FlushInterval.
	SyncInterval
)

// Options configure a Writer. Only Path is required.
type Options struct {
	// Path is the active log file, e.g. "decisions.log"; rotated files go next
	// to it. "-" writes to standard output, without rotation, resume or fsync,
	// starting a new chain at every Open.
	Path string
	// BufferSize is the queue capacity in records (default 4096).
	BufferSize int
	// FlushInterval is how often records written by Log (and by LogDurable
	// under SyncInterval) are fsynced (default 200ms).
	FlushInterval time.Duration
	// MaxBytes rotates the active file before a record would take it past
	// this size (0: no size rotation). A record larger than MaxBytes gets a
	// file of its own.
	MaxBytes int64
	// MaxAge rotates a non-empty active file this long after it was started
	// (0: no time rotation).
	MaxAge time.Duration
	// MaxFiles keeps at most this many rotated files (0: no limit).
	MaxFiles int
	// Retention deletes rotated files rotated longer ago than this (0: keep).
	// Retention runs at Open and after each rotation. Deleting the oldest
	// files means the remaining chain no longer starts at GenesisHash; keep
	// the last hash of deleted files elsewhere if auditors need the link.
	Retention time.Duration
	// OnFull is the policy when the queue is full (default Block).
	OnFull FullPolicy
	// Sync is what LogDurable waits for (default SyncAlways).
	Sync SyncPolicy
	// Masker masks records before they are hashed; nil applies the built-in
	// rules only. Masking cannot be turned off.
	Masker *Masker
	// Clock supplies default timestamps and drives rotation and retention
	// (default time.Now).
	Clock func() time.Time
	// RepairTruncatedTail lets Open cut off a partial last line (no newline,
	// left by a crash mid-write) and continue the chain from the last complete
	// record, logging a warning. Without it Open refuses to start.
	RepairTruncatedTail bool
	// RecoverAfter is how long after a write or fsync failure the writer
	// tries to reopen the log on its own (default 5s; negative: never, the
	// process must reopen it). Until then, and while reopening fails, every
	// record is refused (fail closed).
	RecoverAfter time.Duration
	// Logger receives warnings (repairs, retention) and the first write
	// failure (default slog.Default()).
	Logger *slog.Logger

	// Test hooks.
	wrapFile    func(*os.File) logFile // wraps every active file opened
	beforeBatch func()                 // runs on the writer goroutine before each batch
	stdout      io.Writer              // replaces os.Stdout for Path "-"
}

// WriterStats are counters for metrics.
type WriterStats struct {
	Written   uint64 // records written to the log file
	Failed    uint64 // records accepted into the queue that could not be written (write or rotation error, or the log had already failed)
	Rejected  uint64 // Log/LogDurable calls that returned an error before their record was queued
	QueueLen  int    // records waiting in the queue
	QueueCap  int
	Rotations uint64
	Syncs     uint64 // fsyncs of the active file
	Bytes     uint64 // bytes written
	Reopens   uint64 // times the file was found moved under the writer and reopened
}

// logFile is what the writer needs of the active file.
type logFile interface {
	io.Writer
	Sync() error
	Close() error
}

type stdoutFile struct{ io.Writer }

func (stdoutFile) Sync() error  { return nil } // fsync on a pipe or terminal fails; durability is the reader's
func (stdoutFile) Close() error { return nil }

const (
	maxBatch       = 512     // records per group commit
	flushThreshold = 1 << 20 // bytes buffered before a write within a batch
)

type request struct {
	head, tail []byte     // canonical members before and after "prev_hash"
	wait       bool       // LogDurable waits on done
	done       chan error // capacity 1
	line       []byte     // the encoding buffer head and tail point into
	mw         maskWriter // encodeRecord's scratch
}

// requests recycles records once nobody needs them (see recycle): a
// decision then costs the garbage collector about 2 KiB and a few
// allocations less.
var requests = sync.Pool{New: func() any {
	return &request{done: make(chan error, 1), line: make([]byte, 0, 2048)}
}}

func newRequest() *request { return requests.Get().(*request) }

// recycle returns r to the pool. Only the last holder of r may call it: the
// writer goroutine once it has copied a record nobody waits for, the
// LogDurable caller once it has received from done, or the caller whose
// record never reached the queue.
func recycle(r *request) {
	if cap(r.line) > 16<<10 || cap(r.mw.masked) > 64 {
		return // an outsized record: let it go
	}
	r.head, r.tail, r.wait = nil, nil, false
	r.line = r.line[:0]
	r.mw.reset(nil)
	requests.Put(r)
}

// Writer appends events to a hash-chained decision log. Its methods are safe
// for concurrent use. A single goroutine owns the file: it assigns prev_hash
// and hash in queue order, so chain order is file order.
//
// After a write, fsync or rotation error the writer fails closed: Log and
// LogDurable return an error wrapping ErrUnavailable until the writer has
// reopened the log (every Options.RecoverAfter, checking the tail the
// failure may have left) or the process opens it again.
type Writer struct {
	opts   Options
	masker *Masker
	stream bool // masker.fastMasker(): prepare uses encodeRecord
	clock  func() time.Time
	logger *slog.Logger
	name   logName // zero for stdout

	// mu is held for reading while sending on queue and for writing to close
	// it, so no record can be queued after the goroutine's final drain.
	mu        sync.RWMutex
	queue     chan *request
	closing   chan struct{}
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error
	failure   atomic.Pointer[error]
	// durable is the hash of the last record known to be fsynced (or found
	// on disk at Open); see DurableHash.
	durable atomic.Pointer[string]

	written, failed, rejected, rotations, syncs, bytes, reopens atomic.Uint64

	// Owned by the writer goroutine once Open returns.
	out           logFile
	activeInfo    os.FileInfo // identity of out, to notice it moved (moved.go)
	lock          io.Closer
	size          int64 // active file size, buffered bytes included
	activeSince   time.Time
	prev          string
	buf           []byte
	bufRecords    int
	unsynced      bool
	lastRotated   string
	lastRecover   time.Time // last failure or recovery attempt
	lastRetention time.Time
}

// Open opens (or creates) the log at opts.Path and continues its chain from
// the last record of the newest file. It returns an error naming file:line if
// that record is damaged, or if the file ends in a partial line and
// opts.RepairTruncatedTail is not set. ctx bounds the resume scan only.
func Open(ctx context.Context, opts Options) (*Writer, error) {
	if opts.Path == "" {
		return nil, errors.New(`decisionlog: open: Options.Path is required (a file, or "-" for stdout)`)
	}
	if opts.BufferSize < 0 || opts.FlushInterval < 0 || opts.MaxBytes < 0 || opts.MaxAge < 0 || opts.MaxFiles < 0 || opts.Retention < 0 {
		return nil, errors.New("decisionlog: open: negative size, count or duration in Options")
	}
	if opts.OnFull != Block && opts.OnFull != FailClosed {
		return nil, fmt.Errorf("decisionlog: open: unknown OnFull policy %d", opts.OnFull)
	}
	if opts.Sync != SyncAlways && opts.Sync != SyncInterval {
		return nil, fmt.Errorf("decisionlog: open: unknown Sync policy %d", opts.Sync)
	}
	if opts.BufferSize == 0 {
		opts.BufferSize = 4096
	}
	if opts.FlushInterval == 0 {
		opts.FlushInterval = 200 * time.Millisecond
	}
	if opts.RecoverAfter == 0 {
		opts.RecoverAfter = 5 * time.Second
	}
	w := &Writer{
		opts:    opts,
		masker:  opts.Masker,
		clock:   opts.Clock,
		logger:  opts.Logger,
		queue:   make(chan *request, opts.BufferSize),
		closing: make(chan struct{}),
		done:    make(chan struct{}),
		prev:    GenesisHash,
	}
	if w.masker == nil {
		w.masker = &Masker{}
	}
	w.stream = w.masker.fastMasker()
	if w.clock == nil {
		w.clock = time.Now
	}
	if w.logger == nil {
		w.logger = slog.Default()
	}
	if opts.Path == "-" {
		out := opts.stdout
		if out == nil {
			out = os.Stdout
		}
		w.out = stdoutFile{out}
	} else if err := w.openFile(ctx); err != nil {
		return nil, err
	}
	w.setDurable()
	go w.run()
	return w, nil
}

func (w *Writer) openFile(ctx context.Context) (err error) {
	w.name = splitLogPath(w.opts.Path)
	if err := os.MkdirAll(w.name.dir, 0o750); err != nil {
		return fmt.Errorf("decisionlog: open: %w", err)
	}
	w.lock, err = LockFile(w.opts.Path + ".lock")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			w.lock.Close()
		}
	}()
	files, err := Files(w.opts.Path)
	if err != nil {
		return fmt.Errorf("decisionlog: open: %w", err)
	}
	if w.prev, err = w.chainTip(ctx, files, w.opts.RepairTruncatedTail); err != nil {
		return err
	}
	rotated, err := listRotated(w.name)
	if err != nil {
		return err
	}
	if len(rotated) > 0 {
		w.lastRotated = rotated[len(rotated)-1].name
	}
	now := w.clock()
	if err := w.openActive(now); err != nil {
		return err
	}
	w.applyRetention(now)
	return nil
}

// chainTip returns the hash of the newest complete record in files (oldest
// first), GenesisHash if there is none.
func (w *Writer) chainTip(ctx context.Context, files []string, repair bool) (string, error) {
	for i := len(files) - 1; i >= 0; i-- {
		if err := ctx.Err(); err != nil {
			return "", fmt.Errorf("decisionlog: open: %w", err)
		}
		hash, ok, err := w.lastHash(files[i], repair)
		if err != nil {
			return "", err
		}
		if ok {
			return hash, nil
		}
	}
	return GenesisHash, nil
}

// lastHash returns the hash of the last complete record of the file, after
// dealing with a partial last line (cut off if repair, else an error); ok is
// false if the file has no records.
func (w *Writer) lastHash(path string, repair bool) (hash string, ok bool, err error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return "", false, fmt.Errorf("decisionlog: open: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", false, fmt.Errorf("decisionlog: open: %w", err)
	}
	if st.Size() == 0 {
		return "", false, nil
	}
	// Two newlines: the one ending the last complete line and the one before it.
	data, off, err := ReadTail(f, st.Size(), 2)
	if err != nil {
		return "", false, fmt.Errorf("decisionlog: open: read %s: %w", path, err)
	}
	if data[len(data)-1] != '\n' {
		cut := bytes.LastIndexByte(data, '\n') + 1
		line, err := lineNumber(f, off+int64(cut))
		if err != nil {
			return "", false, fmt.Errorf("decisionlog: open: read %s: %w", path, err)
		}
		if !repair {
			return "", false, fmt.Errorf("decisionlog: open: %s:%d: %w (%d bytes, no newline; the last run probably stopped mid-write); set RepairTruncatedTail to cut it off and continue the chain", path, line, ErrTruncatedTail, len(data)-cut)
		}
		if err := f.Truncate(off + int64(cut)); err != nil {
			return "", false, fmt.Errorf("decisionlog: open: repair %s: %w", path, err)
		}
		if err := f.Sync(); err != nil {
			return "", false, fmt.Errorf("decisionlog: open: repair %s: %w", path, err)
		}
		w.logger.Warn("decisionlog: removed truncated record at end of log",
			"file", path, "line", line, "bytes", len(data)-cut)
		data = data[:cut]
		if len(data) == 0 {
			return "", false, nil
		}
	}
	start := bytes.LastIndexByte(data[:len(data)-1], '\n') + 1
	rec, err := verifyLine(data[start : len(data)-1])
	if err != nil {
		line, lerr := lineNumber(f, off+int64(start))
		if lerr != nil {
			return "", false, fmt.Errorf("decisionlog: open: read %s: %w", path, lerr)
		}
		return "", false, fmt.Errorf("decisionlog: open: %s:%d: last record is damaged, refusing to extend the chain: %w", path, line, err)
	}
	return rec.hash, true, nil
}

// openActive opens the active file for appending; now is its start time if it
// is new or empty.
func (w *Writer) openActive(now time.Time) error {
	f, err := os.OpenFile(w.opts.Path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("decisionlog: open: %w", err)
	}
	if err := lockActive(f); err != nil {
		f.Close()
		return err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("decisionlog: open: %w", err)
	}
	w.size = st.Size()
	w.activeInfo = st
	w.activeSince = now
	if w.size == 0 {
		// The file may be new, or renamed away just now: make the directory durable.
		if err := SyncDir(w.name.dir); err != nil {
			f.Close()
			return fmt.Errorf("decisionlog: open: sync %s: %w", w.name.dir, err)
		}
	} else if t, ok := firstTimestamp(w.opts.Path); ok {
		w.activeSince = t
	}
	w.out = f
	if w.opts.wrapFile != nil {
		w.out = w.opts.wrapFile(f)
	}
	return nil
}

var errStop = errors.New("stop")

// firstTimestamp is the timestamp of a resumed file's first record, its best
// available start time for MaxAge.
func firstTimestamp(path string) (time.Time, bool) {
	f, err := os.Open(path)
	if err != nil {
		return time.Time{}, false
	}
	defer f.Close()
	var ts time.Time
	_ = EachLine(f, func(_ int, line []byte, _ bool) error {
		var r struct {
			Timestamp time.Time `json:"timestamp"`
		}
		if json.Unmarshal(line, &r) == nil {
			ts = r.Timestamp
		}
		return errStop
	})
	return ts, !ts.IsZero()
}

// Log masks ev and queues it. It returns once the record is accepted: the
// writer writes it at once and fsyncs within FlushInterval. When the queue is
// full it blocks until there is room or ctx is done (Block), or returns
// ErrUnavailable (FailClosed). A record accepted by Log that later fails to be
// written is counted in Stats().Failed and makes Healthy() report the error.
// ev is masked and encoded before Log returns (in the caller's goroutine):
// the caller may reuse whatever ev refers to once the call is over.
func (w *Writer) Log(ctx context.Context, ev Event) error {
	return w.log(ctx, ev, false)
}

// LogDurable is Log that returns only after the record is written and
// fsynced (with Options.Sync SyncInterval: written, fsynced within
// FlushInterval), or with the error that prevented it. Concurrent callers
// share writes and fsyncs (group commit). If ctx ends while waiting, the
// record may still be written.
func (w *Writer) LogDurable(ctx context.Context, ev Event) error {
	return w.log(ctx, ev, true)
}

func (w *Writer) log(ctx context.Context, ev Event, durable bool) error {
	if err := w.admit(); err != nil {
		w.rejected.Add(1)
		return err
	}
	r, err := w.prepare(ev)
	if err != nil {
		w.rejected.Add(1)
		return err
	}
	r.wait = durable
	if err := w.enqueue(ctx, r); err != nil {
		recycle(r)
		w.rejected.Add(1)
		return err
	}
	if !durable {
		return nil
	}
	select {
	case err := <-r.done:
		recycle(r)
		return err
	case <-ctx.Done(): // r stays with the writer, which will still answer on done
		return fmt.Errorf("decisionlog: waiting for fsync (the record may still be written): %w", ctx.Err())
	}
}

func (w *Writer) admit() error {
	select {
	case <-w.closing:
		return ErrClosed
	default:
	}
	return w.failureErr()
}

// prepare masks and encodes ev in the caller's goroutine, leaving only the
// chain splice and hash to the writer goroutine.
func (w *Writer) prepare(ev Event) (*request, error) {
	if ev.Timestamp.IsZero() {
		ev.Timestamp = w.clock()
	}
	ev = maskTopLevel(ev)
	masker, stream := w.masker, w.stream
	if len(ev.MaskPointers) > 0 {
		m, err := w.masker.with(ev.MaskPointers)
		if err != nil {
			return nil, fmt.Errorf("decisionlog: this record's mask pointers: %w", err)
		}
		masker, stream = m, m.fastMasker()
	}
	if stream {
		r := newRequest()
		r.mw.reset(masker.pointers)
		line, n, err := encodeRecord(r.line[:0], &r.mw, ev)
		if err != nil {
			recycle(r)
			return nil, fmt.Errorf("decisionlog: encode event: %w", err)
		}
		r.line, r.head, r.tail = line, line[:n:n], line[n:]
		return r, nil
	}
	return prepareDoc(masker, ev)
}

// maskTopLevel masks the record's top-level copies of caller strings,
// subject and client_id, when they are or hold a credential, as the Masker
// masks their copies in input: here, before either encoder sees the record.
func maskTopLevel(ev Event) Event {
	for _, f := range [...]struct {
		v       *string
		pointer string
	}{{&ev.ClientID, "/client_id"}, {&ev.Subject, "/subject"}} {
		if *f.v != "" && *f.v != MaskValue && redact.IsSecretString(*f.v) {
			*f.v = MaskValue
			ev.Masked = append(slices.Clip(ev.Masked), f.pointer)
			slices.Sort(ev.Masked)
		}
	}
	return ev
}

// prepareDoc is prepare by way of a generic document: for maskers the
// streaming encoder does not model.
func prepareDoc(masker *Masker, ev Event) (*request, error) {
	doc, err := eventDoc(ev, masker.walks)
	if err != nil {
		return nil, fmt.Errorf("decisionlog: encode event: %w", err)
	}
	if masked := masker.apply(doc); len(masked) > 0 {
		all := append(slices.Clone(ev.Masked), masked...)
		slices.Sort(all)
		all = slices.Compact(all)
		list := make([]any, len(all))
		for i, p := range all {
			list[i] = p
		}
		doc["masked"] = list
	}
	head, tail, err := splitCanonical(doc)
	if err != nil {
		return nil, fmt.Errorf("decisionlog: encode event: %w", err)
	}
	r := newRequest()
	r.head, r.tail = head, tail
	return r, nil
}

func (w *Writer) enqueue(ctx context.Context, r *request) error {
	w.mu.RLock()
	defer w.mu.RUnlock()
	select {
	case <-w.closing:
		return ErrClosed
	default:
	}
	select {
	case w.queue <- r:
		return nil
	default:
	}
	if w.opts.OnFull == FailClosed {
		return fmt.Errorf("%w: queue full (%d records)", ErrUnavailable, cap(w.queue))
	}
	select {
	case w.queue <- r:
		return nil
	case <-w.closing:
		return ErrClosed
	case <-ctx.Done():
		return fmt.Errorf("decisionlog: queue full: %w", ctx.Err())
	}
}

// Healthy returns nil while the writer accepts records, the error (wrapping
// ErrUnavailable) after a write failure, or ErrClosed after Close.
func (w *Writer) Healthy() error {
	if err := w.failureErr(); err != nil {
		return err
	}
	select {
	case <-w.closing:
		return ErrClosed
	default:
		return nil
	}
}

// Failures counts the records the writer accepted and could not write (as
// Stats().Failed). A caller that queued records with Log and waits on a
// later one with LogDurable compares it before and after: the log may have
// failed and recovered in between, losing an earlier record.
func (w *Writer) Failures() uint64 { return w.failed.Load() }

// Stats returns the writer's counters.
func (w *Writer) Stats() WriterStats {
	return WriterStats{
		Written:   w.written.Load(),
		Failed:    w.failed.Load(),
		Rejected:  w.rejected.Load(),
		QueueLen:  len(w.queue),
		QueueCap:  cap(w.queue),
		Rotations: w.rotations.Load(),
		Syncs:     w.syncs.Load(),
		Bytes:     w.bytes.Load(),
		Reopens:   w.reopens.Load(),
	}
}

// Close stops accepting records, writes and fsyncs everything queued, and
// closes the file. It is idempotent. If ctx ends first, Close returns its
// error and the queue keeps draining in the background. A write failure that
// happened while the writer ran is reported again here.
func (w *Writer) Close(ctx context.Context) error {
	w.closeOnce.Do(func() {
		close(w.closing) // wakes senders blocked on a full queue
		w.mu.Lock()
		close(w.queue)
		w.mu.Unlock()
	})
	select {
	case <-w.done:
		return w.closeErr
	case <-ctx.Done():
		return fmt.Errorf("decisionlog: close: %w (records are still being written)", ctx.Err())
	}
}

func (w *Writer) failureErr() error {
	if p := w.failure.Load(); p != nil {
		return *p
	}
	return nil
}

// setFailure records the first failure and returns the error callers get.
// Only the writer goroutine calls it; it logs before publishing so that
// whoever sees Healthy fail can also find the log line.
func (w *Writer) setFailure(err error) error {
	if prev := w.failureErr(); prev != nil {
		return prev
	}
	w.logger.Error("decisionlog: write failed, refusing further decisions until the log can be reopened", "path", w.opts.Path, "err", err)
	wrapped := fmt.Errorf("%w: %w", ErrUnavailable, err)
	w.lastRecover = w.clock()
	w.failure.Store(&wrapped)
	return wrapped
}

// recover reopens the log after a write or fsync failure, so that a disk
// that filled up and was freed does not leave the service denying every
// decision until a restart. It drops what was buffered (those records were
// already reported as failed), cuts off a partial record the failure may
// have left, continues the chain from the last complete record on disk, and
// proves the file can be fsynced before accepting records again. On any
// error the writer stays failed and tries again after RecoverAfter.
func (w *Writer) recover(now time.Time) {
	if w.out != nil {
		_ = w.out.Close() // the failed descriptor; its error is the one we know
		w.out = nil
	}
	w.buf, w.bufRecords, w.unsynced = w.buf[:0], 0, false
	err := func() error {
		files, err := Files(w.opts.Path)
		if err != nil {
			return err
		}
		prev, err := w.chainTip(context.Background(), files, true)
		if err != nil {
			return err
		}
		if err := w.openActive(now); err != nil {
			return err
		}
		if err := w.out.Sync(); err != nil {
			return fmt.Errorf("decisionlog: fsync %s: %w", w.opts.Path, err)
		}
		w.prev = prev
		return nil
	}()
	if err != nil {
		if w.out != nil {
			_ = w.out.Close()
			w.out = nil
		}
		w.logger.Warn("decisionlog: still unavailable, will retry", "path", w.opts.Path, "retry_in", w.opts.RecoverAfter.String(), "err", err)
		return
	}
	w.setDurable()
	w.failure.Store(nil)
	w.logger.Info("decisionlog: recovered: accepting records again", "path", w.opts.Path, "chain_continues_after", short(w.prev))
}

// run is the writer goroutine.
func (w *Writer) run() {
	defer close(w.done)
	ticker := time.NewTicker(w.opts.FlushInterval)
	defer ticker.Stop()
	batch := make([]*request, 0, maxBatch)
	for {
		select {
		case r, ok := <-w.queue:
			if !ok {
				w.closeErr = w.shutdown()
				return
			}
			// Group commit: take whatever else is queued right now.
			batch = append(batch[:0], r)
			open := true
		drain:
			for len(batch) < maxBatch {
				select {
				case r, ok := <-w.queue:
					if !ok {
						open = false
						break drain
					}
					batch = append(batch, r)
				default:
					break drain
				}
			}
			w.process(batch)
			clear(batch)
			if !open {
				w.closeErr = w.shutdown()
				return
			}
		case <-ticker.C:
			w.tick()
		}
	}
}

func (w *Writer) process(batch []*request) {
	if w.opts.beforeBatch != nil {
		w.opts.beforeBatch()
	}
	err := w.failureErr()
	if err == nil && w.pathMoved() {
		if err = w.reopenMoved(); err != nil {
			err = w.setFailure(err)
		}
	}
	if err != nil {
		w.failed.Add(uint64(len(batch)))
	} else {
		err = w.appendBatch(batch)
		if err == nil && w.opts.Sync == SyncAlways && slices.ContainsFunc(batch, func(r *request) bool { return r.wait }) {
			err = w.sync()
		}
		if err == nil && w.pathMoved() {
			// Moved while this batch was written: its records are not at
			// the path, so none is acknowledged (a false alarm is safe).
			w.failed.Add(uint64(len(batch)))
			if err = w.reopenMoved(); err == nil {
				err = fmt.Errorf("%w: the log file moved while this record was written", ErrUnavailable)
			}
		}
		if err != nil && !errors.Is(err, ErrUnavailable) {
			err = w.setFailure(err)
		}
	}
	// On failure every durable caller of the batch hears about it, even one
	// whose record reached the disk before the failure: a false alarm is
	// safe, a false acknowledgement is not.
	for _, r := range batch {
		if r.wait {
			r.done <- err // r is the caller's again
		} else {
			recycle(r)
		}
	}
	// The callers just woken sit in this P's run queue. Without a yield
	// the next batch's write and fsync would hold the P while they wait
	// (with GOMAXPROCS 2, half the CPU), their next records would miss
	// that batch, and group commits would shrink to a few records
	// (BENCHMARKS.md: 4 instead of 20 records per fsync at 128 clients).
	runtime.Gosched()
}

func (w *Writer) appendBatch(batch []*request) error {
	for i, r := range batch {
		n := int64(sealedLen(r.head, r.tail))
		if err := w.rotateIfNeeded(n); err != nil {
			w.failed.Add(uint64(len(batch) - i))
			return err
		}
		w.buf, w.prev = appendSealed(w.buf, r.head, r.tail, w.prev)
		w.bufRecords++
		w.size += n
		if len(w.buf) >= flushThreshold {
			if err := w.flushBuf(); err != nil {
				w.failed.Add(uint64(len(batch) - i - 1))
				return err
			}
		}
	}
	return w.flushBuf()
}

// flushBuf writes the buffered lines with one write, so readers of a live
// file rarely see half a batch.
func (w *Writer) flushBuf() error {
	if len(w.buf) == 0 {
		return nil
	}
	n, err := w.out.Write(w.buf)
	w.bytes.Add(uint64(n))
	records := uint64(w.bufRecords)
	w.buf, w.bufRecords = w.buf[:0], 0
	if cap(w.buf) > 4*flushThreshold {
		w.buf = nil
	}
	if err != nil {
		w.failed.Add(records)
		return fmt.Errorf("decisionlog: write %s: %w", w.opts.Path, err)
	}
	w.written.Add(records)
	w.unsynced = true
	return nil
}

func (w *Writer) sync() error {
	if !w.unsynced {
		return nil
	}
	if err := w.out.Sync(); err != nil {
		return fmt.Errorf("decisionlog: fsync %s: %w", w.opts.Path, err)
	}
	w.unsynced = false
	w.syncs.Add(1)
	w.setDurable()
	return nil
}

// setDurable publishes w.prev as durable. It is called after a successful
// fsync, when every sealed record has been written (the buffer is always
// flushed before a sync).
func (w *Writer) setDurable() {
	h := w.prev
	w.durable.Store(&h)
}

// DurableHash returns the hash of the newest record that is on disk and
// fsynced (at Open: the last record found on disk, GenesisHash for an empty
// log). Records after it may be written but not yet fsynced. A Shipper reads
// the log only up to this record, so nothing leaves the machine before it is
// durable here. For Path "-" it follows the records written to stdout.
func (w *Writer) DurableHash() string {
	return *w.durable.Load()
}

func (w *Writer) tick() {
	if w.failureErr() != nil {
		if now := w.clock(); w.opts.RecoverAfter > 0 && w.name.dir != "" && now.Sub(w.lastRecover) >= w.opts.RecoverAfter {
			w.lastRecover = now
			w.recover(now)
		}
		return
	}
	var err error
	if w.pathMoved() { // noticed within a flush interval, records or not
		err = w.reopenMoved()
	}
	if err == nil {
		err = w.rotateIfNeeded(0)
	}
	if err == nil {
		err = w.sync()
	}
	if err != nil {
		w.setFailure(err)
	}
	// Rotation applies retention too, but a log that stops growing stops
	// rotating: age out its old files on the clock as well.
	if now := w.clock(); w.opts.Retention > 0 && w.name.base != "" && now.Sub(w.lastRetention) >= retentionEvery {
		w.lastRetention = now
		w.applyRetention(now)
	}
}

// retentionEvery is how often the writer applies Options.Retention when no
// rotation does.
const retentionEvery = time.Minute

// rotateIfNeeded rotates before a record of next bytes is appended.
func (w *Writer) rotateIfNeeded(next int64) error {
	if w.name.base == "" || w.size == 0 {
		return nil
	}
	if w.opts.MaxBytes > 0 && w.size+next > w.opts.MaxBytes {
		return w.rotate(w.clock())
	}
	if w.opts.MaxAge > 0 {
		if now := w.clock(); now.Sub(w.activeSince) >= w.opts.MaxAge {
			return w.rotate(now)
		}
	}
	return nil
}

// rotate renames the active file to its rotated name and starts a new one.
// The chain simply carries on: the new file's first prev_hash is the old
// file's last hash.
func (w *Writer) rotate(now time.Time) error {
	if err := w.flushBuf(); err != nil {
		return err
	}
	if err := w.sync(); err != nil {
		return err
	}
	err := w.out.Close()
	w.out = nil
	if err != nil {
		return fmt.Errorf("decisionlog: rotate: close %s: %w", w.opts.Path, err)
	}
	name := w.nextRotatedName(now)
	if err := os.Rename(w.opts.Path, filepath.Join(w.name.dir, name)); err != nil {
		return fmt.Errorf("decisionlog: rotate: %w", err)
	}
	w.lastRotated = name
	if err := w.openActive(now); err != nil { // also makes the rename durable
		return fmt.Errorf("decisionlog: rotate: %w", err)
	}
	w.rotations.Add(1)
	w.applyRetention(now)
	return nil
}

// nextRotatedName names a file rotated at now, strictly after the newest
// rotated name and not colliding with an existing file, whatever the clock
// says, so that name order stays chain order.
func (w *Writer) nextRotatedName(now time.Time) string {
	t := now.UTC().Truncate(time.Millisecond)
	if last, ok := w.name.rotatedTime(w.lastRotated); ok && !t.After(last) {
		t = last.Add(time.Millisecond)
	}
	for {
		name := w.name.rotatedName(t)
		if _, err := os.Lstat(filepath.Join(w.name.dir, name)); errors.Is(err, os.ErrNotExist) {
			return name
		}
		t = t.Add(time.Millisecond)
	}
}

// applyRetention deletes rotated files beyond MaxFiles or older than
// Retention. Failures are logged, not fatal: they cost disk, not decisions.
func (w *Writer) applyRetention(now time.Time) {
	if w.opts.MaxFiles == 0 && w.opts.Retention == 0 {
		return
	}
	rotated, err := listRotated(w.name)
	if err != nil {
		w.logger.Warn("decisionlog: retention", "err", err)
		return
	}
	var del []rotatedFile
	if w.opts.MaxFiles > 0 && len(rotated) > w.opts.MaxFiles {
		del, rotated = rotated[:len(rotated)-w.opts.MaxFiles], rotated[len(rotated)-w.opts.MaxFiles:]
	}
	if w.opts.Retention > 0 {
		for _, r := range rotated {
			if now.Sub(r.t) > w.opts.Retention {
				del = append(del, r)
			}
		}
	}
	for _, r := range del {
		path := filepath.Join(w.name.dir, r.name)
		if err := os.Remove(path); err != nil {
			w.logger.Warn("decisionlog: retention: remove rotated log", "file", path, "err", err)
			continue
		}
		w.logger.Info("decisionlog: retention removed rotated log", "file", path)
	}
	if len(del) > 0 {
		if err := SyncDir(w.name.dir); err != nil {
			w.logger.Warn("decisionlog: retention: sync dir", "dir", w.name.dir, "err", err)
		}
	}
}

// shutdown runs on the writer goroutine once the queue is closed and drained.
func (w *Writer) shutdown() error {
	var errs []error
	if err := w.failureErr(); err != nil {
		errs = append(errs, err)
	} else if err := w.flushBuf(); err != nil {
		errs = append(errs, err)
	} else if err := w.sync(); err != nil {
		errs = append(errs, err)
	}
	if w.out != nil {
		if err := w.out.Close(); err != nil {
			errs = append(errs, fmt.Errorf("decisionlog: close %s: %w", w.opts.Path, err))
		}
		w.out = nil
	}
	if w.lock != nil {
		if err := w.lock.Close(); err != nil {
			errs = append(errs, fmt.Errorf("decisionlog: unlock: %w", err))
		}
	}
	return errors.Join(errs...)
}
