// Package logship ships the local decision log to a remote, OPA-compatible
// decision-log service, tailing the hash-chained files (see Shipper).
package logship

import (
	"bytes"
	"cmp"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/scopegate/scopegate/internal/decisionlog"
)

// errStop ends a walk over a file's lines early.
var errStop = errors.New("stop")

// Shipping to a remote decision-log service.
//
// Design: the local hash-chained file stays the record of truth, and a
// decision is acknowledged once LogDurable has put it there, as without a
// remote. A Shipper then *tails the local files*, rather than receiving
// records from the Writer through a hook or a tee, because only the files
// survive a crash: a hook would lose every record that was fsynced and
// acknowledged but not yet handed on when the process died. Tailing with a
// persisted cursor resumes exactly where it stopped, across restarts, kill -9
// and file rotation.
//
//   - The cursor is the hash of the last record taken from the log (plus the
//     file, identified by its first record's prev_hash because rotation
//     renames it, and a byte offset, to resume without a scan). The hash
//     chain also tells the shipper when records it never took have gone
//     (deleted by retention): the next record's prev_hash is not the cursor.
//     That is logged as an error and counted in Stats().Gaps, never skipped
//     silently.
//   - It reads only records up to Writer.DurableHash: nothing leaves the
//     machine before it is durable locally, so the remote can never hold a
//     record the local chain lost in a crash.
//   - Records are cut into batches (a gzip-compressed JSON array of the log
//     lines, as OPA's decision-log plugin POSTs them) and every batch is
//     written to the spool directory and fsynced before the cursor moves
//     past its records. A sender POSTs spooled batches in order, retrying
//     with capped exponential backoff while the service is down, and deletes
//     each one only after a 2xx. Delivery is at least once: a crash between
//     the 2xx and the delete sends that batch again (each event keeps its
//     decision_id, so the service can deduplicate).
//   - When the spool reaches MaxSpoolBytes the shipper stops reading; the
//     records wait in the local log, which is still written as usual.

// DefaultResource is the path, under the service URL, that OPA's decision-log
// plugin POSTs to.
const DefaultResource = "/logs"

// ShipperOptions configure a Shipper. LogPath and URL are required.
type ShipperOptions struct {
	// LogPath is the Writer's Options.Path (a file, not "-").
	LogPath string
	// URL is the decision-log service, e.g. "https://logs.example.com";
	// batches are POSTed to URL + Resource.
	URL string
	// Resource defaults to DefaultResource ("/logs").
	Resource string
	// Token, when set, is sent as "Authorization: Bearer <Token>".
	Token string
	// SpoolDir holds batches not yet accepted by the service, and the cursor
	// (default LogPath + ".spool").
	SpoolDir string
	// Durable returns the hash of the newest record that may be shipped
	// (Writer.DurableHash). Nil ships every complete line in the files.
	Durable func() string
	// BatchBytes caps the uncompressed size of a batch (default 512 KiB); a
	// larger record travels alone.
	BatchBytes int
	// Interval is how often the log is checked for new records; it is also
	// the longest a record waits before its batch is spooled (default 1s).
	Interval time.Duration
	// MinRetryDelay and MaxRetryDelay bound the exponential backoff after a
	// failed POST (defaults 100ms and 30s).
	MinRetryDelay, MaxRetryDelay time.Duration
	// RequestTimeout bounds one POST (default 30s).
	RequestTimeout time.Duration
	// MaxSpoolBytes pauses reading the log while the spool holds this much
	// (default 1 GiB).
	MaxSpoolBytes int64
	// Client defaults to a new http.Client.
	Client *http.Client
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// ShipperStats are counters for metrics.
type ShipperStats struct {
	Shipped      uint64 // records accepted by the service
	Batches      uint64 // batches accepted by the service
	SendErrors   uint64 // failed POSTs (each retried)
	Spooled      uint64 // records written to the spool
	SpoolBatches int    // batches waiting in the spool
	SpoolBytes   int64
	Gaps         uint64 // places where records vanished from the local log before they were shipped
	Skipped      uint64 // unreadable lines that could not be shipped
	Failing      bool   // the last POST failed
}

// cursor is the persisted read position.
type cursor struct {
	Hash    string `json:"hash"`       // last record taken from the log ("" before the first)
	First   string `json:"file_first"` // prev_hash of the first record of the file being read ("" if not known)
	Offset  int64  `json:"offset"`     // bytes of that file already read
	NextSeq uint64 `json:"next_seq"`   // sequence number of the next spooled batch
}

const (
	cursorFile = "cursor.json"
	batchExt   = ".json.gz"
)

// spooled is a batch file in the spool.
type spooled struct {
	seq     uint64
	records int
	size    int64
}

func (b spooled) name() string { return batchName(b.seq, b.records) }

// Shipper sends the decision log to an OPA-compatible decision-log service.
// See the design note at the top of this file.
type Shipper struct {
	opts   ShipperOptions
	url    string
	logger *slog.Logger
	lock   io.Closer

	// Reader state, owned by the reader goroutine.
	pos       cursor
	saved     cursor
	firstPrev map[string]string // rotated file -> prev_hash of its first record
	mismatch  *cursor           // a chain break seen once; a gap if seen again
	pending   []spooled         // spooled this pass, published once the cursor is saved
	spoolFull bool
	lastErr   string

	mu        sync.Mutex
	queue     []spooled // published batches, oldest first
	spoolSize int64

	kick       chan struct{} // wakes the sender
	stopRead   chan struct{}
	readDone   chan struct{}
	draining   chan struct{} // closed by Close: send while it succeeds, then stop
	sendDone   chan struct{}
	sendCtx    context.Context
	cancelSend context.CancelFunc
	closeOnce  sync.Once

	shipped, batches, sendErrors, spooledRecords, gaps, skipped atomic.Uint64
	failing                                                     atomic.Bool
}

// NewShipper opens the spool (creating it), resumes from its cursor and
// starts shipping in the background until Close.
func NewShipper(opts ShipperOptions) (*Shipper, error) {
	if opts.LogPath == "" || opts.LogPath == "-" {
		return nil, errors.New("decisionlog: shipper: needs the decision log file (not stdout)")
	}
	if !strings.HasPrefix(opts.URL, "http://") && !strings.HasPrefix(opts.URL, "https://") {
		return nil, fmt.Errorf("decisionlog: shipper: URL %q: want an http:// or https:// URL", opts.URL)
	}
	if opts.BatchBytes < 0 || opts.Interval < 0 || opts.MinRetryDelay < 0 || opts.MaxRetryDelay < 0 || opts.RequestTimeout < 0 || opts.MaxSpoolBytes < 0 {
		return nil, errors.New("decisionlog: shipper: negative size or duration in ShipperOptions")
	}
	if opts.Resource == "" {
		opts.Resource = DefaultResource
	}
	if !strings.HasPrefix(opts.Resource, "/") {
		opts.Resource = "/" + opts.Resource
	}
	if opts.SpoolDir == "" {
		opts.SpoolDir = opts.LogPath + ".spool"
	}
	if opts.BatchBytes == 0 {
		opts.BatchBytes = 512 << 10
	}
	if opts.Interval == 0 {
		opts.Interval = time.Second
	}
	if opts.MinRetryDelay == 0 {
		opts.MinRetryDelay = 100 * time.Millisecond
	}
	if opts.MaxRetryDelay == 0 {
		opts.MaxRetryDelay = 30 * time.Second
	}
	opts.MaxRetryDelay = max(opts.MaxRetryDelay, opts.MinRetryDelay)
	if opts.RequestTimeout == 0 {
		opts.RequestTimeout = 30 * time.Second
	}
	if opts.MaxSpoolBytes == 0 {
		opts.MaxSpoolBytes = 1 << 30
	}
	if opts.Client == nil {
		opts.Client = &http.Client{}
	}
	s := &Shipper{
		opts:      opts,
		url:       strings.TrimSuffix(opts.URL, "/") + opts.Resource,
		logger:    opts.Logger,
		firstPrev: map[string]string{},
		kick:      make(chan struct{}, 1),
		stopRead:  make(chan struct{}),
		readDone:  make(chan struct{}),
		draining:  make(chan struct{}),
		sendDone:  make(chan struct{}),
	}
	if s.logger == nil {
		s.logger = slog.Default()
	}
	if err := os.MkdirAll(opts.SpoolDir, 0o750); err != nil {
		return nil, fmt.Errorf("decisionlog: shipper: %w", err)
	}
	lock, err := decisionlog.LockFile(filepath.Join(opts.SpoolDir, "lock"))
	if err != nil {
		return nil, fmt.Errorf("decisionlog: shipper: %w", err)
	}
	s.lock = lock
	if err := s.loadSpool(); err != nil {
		lock.Close()
		return nil, err
	}
	s.sendCtx, s.cancelSend = context.WithCancel(context.Background())
	go s.readLoop()
	go s.sendLoop()
	s.wake()
	return s, nil
}

// loadSpool reads the cursor and the batches an earlier run left spooled.
func (s *Shipper) loadSpool() error {
	dir := s.opts.SpoolDir
	switch b, err := os.ReadFile(filepath.Join(dir, cursorFile)); {
	case err == nil:
		if err := json.Unmarshal(b, &s.pos); err != nil {
			return fmt.Errorf("decisionlog: shipper: %s: %w", filepath.Join(dir, cursorFile), err)
		}
	case !errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("decisionlog: shipper: %w", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("decisionlog: shipper: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".tmp-") { // a batch or cursor cut short by a crash
			_ = os.Remove(filepath.Join(dir, name))
			continue
		}
		seq, records, ok := parseBatchName(name)
		if !ok {
			continue
		}
		info, err := e.Info()
		if err != nil {
			return fmt.Errorf("decisionlog: shipper: %w", err)
		}
		s.queue = append(s.queue, spooled{seq: seq, records: records, size: info.Size()})
		s.spoolSize += info.Size()
	}
	slices.SortFunc(s.queue, func(a, b spooled) int { return cmp.Compare(a.seq, b.seq) })
	if n := len(s.queue); n > 0 {
		// The cursor is saved after the batches of a pass: if the process
		// died in between, the newest batch is ahead of the cursor.
		newest := s.queue[n-1]
		last, err := lastBatchHash(filepath.Join(dir, newest.name()))
		if err != nil {
			return fmt.Errorf("decisionlog: shipper: spooled batch %s: %w", newest.name(), err)
		}
		if last != s.pos.Hash {
			s.logger.Info("decisionlog: shipper: resuming after the newest spooled batch", "batch", newest.name())
			s.pos = cursor{Hash: last, NextSeq: s.pos.NextSeq}
		}
		s.pos.NextSeq = max(s.pos.NextSeq, newest.seq+1)
	}
	s.saved = s.pos
	return nil
}

// Stats returns the shipper's counters.
func (s *Shipper) Stats() ShipperStats {
	s.mu.Lock()
	n, size := len(s.queue), s.spoolSize
	s.mu.Unlock()
	return ShipperStats{
		Shipped:      s.shipped.Load(),
		Batches:      s.batches.Load(),
		SendErrors:   s.sendErrors.Load(),
		Spooled:      s.spooledRecords.Load(),
		SpoolBatches: n,
		SpoolBytes:   size,
		Gaps:         s.gaps.Load(),
		Skipped:      s.skipped.Load(),
		Failing:      s.failing.Load(),
	}
}

// Close takes the records made durable before it was called (close the
// Writer first), spools them, and sends what is spooled for as long as the
// service accepts it and ctx allows. Whatever is left stays in the spool and
// is sent by the next Shipper on the same SpoolDir.
func (s *Shipper) Close(ctx context.Context) error {
	var err error
	s.closeOnce.Do(func() {
		close(s.stopRead)
		select {
		case <-s.readDone:
		case <-ctx.Done():
			err = fmt.Errorf("decisionlog: shipper: close: %w", ctx.Err())
		}
		close(s.draining)
		select {
		case <-s.sendDone:
		case <-ctx.Done():
			s.cancelSend()
			<-s.sendDone
		}
		s.cancelSend()
		<-s.readDone
		if st := s.Stats(); st.SpoolBatches > 0 {
			s.logger.Warn("decisionlog: shipper: batches left in the spool, to be sent at the next start",
				"batches", st.SpoolBatches, "bytes", st.SpoolBytes, "spool", s.opts.SpoolDir)
		}
		if cerr := s.lock.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("decisionlog: shipper: unlock: %w", cerr)
		}
	})
	return err
}

func (s *Shipper) wake() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// readLoop moves durable records from the log to the spool.
func (s *Shipper) readLoop() {
	defer close(s.readDone)
	t := time.NewTicker(s.opts.Interval)
	defer t.Stop()
	for {
		s.pass()
		select {
		case <-t.C:
		case <-s.stopRead:
			s.pass()
			return
		}
	}
}

func (s *Shipper) pass() {
	err := s.read()
	if cerr := s.commit(); err == nil {
		err = cerr
	}
	if err != nil {
		if msg := err.Error(); msg != s.lastErr {
			s.logger.Error("decisionlog: shipper: reading the log into the spool", "err", err)
			s.lastErr = msg
		}
		return
	}
	s.lastErr = ""
}

// batch collects lines into the JSON array of one POST.
type batch struct {
	buf     bytes.Buffer
	records int
	start   cursor // read position before the batch's first record
}

// read takes the durable records after the cursor into spooled batches.
func (s *Shipper) read() error {
	target := ""
	if s.opts.Durable != nil {
		target = s.opts.Durable()
		if target == s.pos.Hash || (s.pos.Hash == "" && target == decisionlog.GenesisHash) {
			return nil
		}
	}
	if s.spoolBytes() >= s.opts.MaxSpoolBytes {
		if !s.spoolFull {
			s.spoolFull = true
			s.logger.Warn("decisionlog: shipper: spool full; records wait in the local log until the service accepts batches",
				"spool", s.opts.SpoolDir, "max_bytes", s.opts.MaxSpoolBytes)
		}
		return nil
	}
	s.spoolFull = false
	files, err := decisionlog.Files(s.opts.LogPath)
	if err != nil || len(files) == 0 {
		return err
	}
	i, off, err := s.resolve(files)
	if err != nil {
		return err
	}
	b := &batch{start: s.pos}
	for ; i < len(files); i, off = i+1, 0 {
		more, err := s.readFile(files[i], i == len(files)-1, off, target, b)
		if err != nil || !more {
			if ferr := s.flush(b); err == nil {
				err = ferr
			}
			return err
		}
	}
	return s.flush(b)
}

// readFile reads one file from off, adding records to b. It reports whether
// to go on with the next file.
func (s *Shipper) readFile(path string, active bool, off int64, target string, b *batch) (more bool, err error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil // rotated or removed under us: resolve again next pass
	}
	if err != nil {
		return false, err
	}
	defer f.Close()
	if off > 0 && s.pos.First != "" {
		// The active file may have been rotated since Files listed it.
		if fp, ok := firstPrevOf(f); !ok || fp != s.pos.First {
			return false, nil
		}
	} else {
		s.pos.First, s.pos.Offset = "", 0
	}
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return false, err
	}
	more = !active
	err = decisionlog.EachLine(f, func(_ int, line []byte, complete bool) error {
		if !complete { // being written, or cut short by a crash
			more = false
			return errStop
		}
		next := off + int64(len(line)) + 1
		var rec struct {
			Prev string `json:"prev_hash"`
			Hash string `json:"hash"`
		}
		if err := json.Unmarshal(line, &rec); err != nil || !decisionlog.IsHexHash(rec.Hash) || !decisionlog.IsHexHash(rec.Prev) {
			s.skipped.Add(1)
			s.logger.Error("decisionlog: shipper: cannot ship an unreadable record; run scopegate audit verify",
				"file", path, "offset", off, "err", err)
			off, s.pos.Offset = next, next
			return nil
		}
		ident := s.pos.First // the file, by its first record's prev_hash
		if off == 0 {
			ident = rec.Prev
		}
		if s.pos.Hash != "" && rec.Prev != s.pos.Hash {
			// Either records are gone, or a rotation renamed the file
			// between Files and Open and this is the next file: leave the
			// cursor alone, resolve it again next pass, and call it a gap
			// only if that lands on the same break.
			here := cursor{Hash: s.pos.Hash, First: ident, Offset: off}
			if s.mismatch == nil || *s.mismatch != here {
				s.mismatch = &here
				more = false
				return errStop
			}
			s.gaps.Add(1)
			s.logger.Error("decisionlog: shipper: records were removed from the local log before they were shipped (retention, or an edited log)",
				"file", path, "offset", off, "last_shipped_hash", s.pos.Hash, "next_prev_hash", rec.Prev)
		}
		s.mismatch = nil
		s.pos.First = ident
		if b.records > 0 && b.buf.Len()+len(line)+2 > s.opts.BatchBytes {
			if err := s.flush(b); err != nil {
				return err
			}
		}
		if b.records == 0 {
			b.buf.WriteByte('[')
		} else {
			b.buf.WriteByte(',')
		}
		b.buf.Write(line)
		b.records++
		s.pos.Hash, s.pos.Offset = rec.Hash, next
		off = next
		if rec.Hash == target || s.spoolBytes() >= s.opts.MaxSpoolBytes {
			more = false
			return errStop
		}
		return nil
	})
	if errors.Is(err, errStop) {
		err = nil
	}
	return more, err
}

// flush writes b to the spool (fsynced) and starts a new batch. On failure
// the cursor goes back to before b's records, so they are read again.
func (s *Shipper) flush(b *batch) error {
	if b.records == 0 {
		b.start = s.pos
		return nil
	}
	b.buf.WriteByte(']')
	sp := spooled{seq: s.pos.NextSeq, records: b.records}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, err := zw.Write(b.buf.Bytes())
	if err == nil {
		err = zw.Close()
	}
	if err == nil {
		sp.size = int64(gz.Len())
		err = writeFileSync(s.opts.SpoolDir, sp.name(), gz.Bytes())
	}
	records := b.records
	b.buf.Reset()
	b.records = 0
	if err != nil {
		seq := s.pos.NextSeq
		s.pos = b.start
		s.pos.NextSeq = seq
		return fmt.Errorf("spool a batch: %w", err)
	}
	s.pos.NextSeq++
	s.pending = append(s.pending, sp)
	s.spooledRecords.Add(uint64(records))
	s.mu.Lock()
	s.spoolSize += sp.size
	s.mu.Unlock()
	b.start = s.pos
	return nil
}

// commit makes the new batches durable, saves the cursor, and only then
// hands the batches to the sender: a batch is never sent (and deleted) while
// a crash could still bring back a cursor from before it.
func (s *Shipper) commit() error {
	if len(s.pending) == 0 && s.pos == s.saved {
		return nil
	}
	if err := decisionlog.SyncDir(s.opts.SpoolDir); err != nil {
		return fmt.Errorf("sync spool: %w", err)
	}
	data, err := json.Marshal(s.pos)
	if err != nil {
		return err
	}
	if err := writeFileSync(s.opts.SpoolDir, cursorFile, data); err != nil {
		return fmt.Errorf("save cursor: %w", err)
	}
	if err := decisionlog.SyncDir(s.opts.SpoolDir); err != nil {
		return fmt.Errorf("sync spool: %w", err)
	}
	s.saved = s.pos
	if len(s.pending) > 0 {
		s.mu.Lock()
		s.queue = append(s.queue, s.pending...)
		s.mu.Unlock()
		s.pending = s.pending[:0]
		s.wake()
	}
	return nil
}

func (s *Shipper) spoolBytes() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.spoolSize
}

// resolve finds the file and offset of the cursor in files.
func (s *Shipper) resolve(files []string) (int, int64, error) {
	if s.pos.First != "" {
		for i, f := range files {
			if fp, ok := s.first(f); ok && fp == s.pos.First {
				return i, s.pos.Offset, nil
			}
		}
	}
	if s.pos.Hash == "" {
		return 0, 0, nil
	}
	for i, f := range files {
		if fp, ok := s.first(f); ok && fp == s.pos.Hash {
			return i, 0, nil
		}
	}
	// The cursor's record ends a file (the next one is empty or missing), or
	// the cursor has no file hint: look for the record itself, newest first,
	// at the end of each file and then in the whole file.
	for i := len(files) - 1; i >= 0; i-- {
		if size, ok := endsWith(files[i], s.pos.Hash); ok {
			s.pos.First, _ = s.first(files[i])
			s.pos.Offset = size
			return i, size, nil
		}
	}
	for i := len(files) - 1; i >= 0; i-- {
		off, found, err := findRecord(files[i], s.pos.Hash)
		if err != nil {
			return 0, 0, err
		}
		if found {
			s.pos.First = ""
			if fp, ok := s.first(files[i]); ok {
				s.pos.First = fp
			}
			s.pos.Offset = off
			return i, off, nil
		}
	}
	// Gone: start from the oldest file; readFile reports the gap.
	return 0, 0, nil
}

// first returns the prev_hash of a file's first record, cached for rotated
// files (which never change).
func (s *Shipper) first(path string) (string, bool) {
	if fp, ok := s.firstPrev[path]; ok {
		return fp, true
	}
	f, err := os.Open(path)
	if err != nil {
		return "", false
	}
	defer f.Close()
	fp, ok := firstPrevOf(f)
	if ok && path != s.opts.LogPath {
		s.firstPrev[path] = fp
	}
	return fp, ok
}

// firstPrevOf reads the prev_hash of the first complete line of r.
func firstPrevOf(r io.Reader) (string, bool) {
	var prev string
	_ = decisionlog.EachLine(r, func(_ int, line []byte, complete bool) error {
		var rec struct {
			Prev string `json:"prev_hash"`
		}
		if complete && json.Unmarshal(line, &rec) == nil && decisionlog.IsHexHash(rec.Prev) {
			prev = rec.Prev
		}
		return errStop
	})
	return prev, prev != ""
}

// endsWith reports whether the last complete record of a file has the given
// hash, and the offset after it.
func endsWith(path, hash string) (int64, bool) {
	f, err := os.Open(path)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || st.Size() == 0 {
		return 0, false
	}
	data, off, err := decisionlog.ReadTail(f, st.Size(), 2)
	if err != nil {
		return 0, false
	}
	end := bytes.LastIndexByte(data, '\n')
	if end < 0 {
		return 0, false
	}
	start := bytes.LastIndexByte(data[:end], '\n') + 1
	var rec struct {
		Hash string `json:"hash"`
	}
	if json.Unmarshal(data[start:end], &rec) != nil || rec.Hash != hash {
		return 0, false
	}
	return off + int64(end) + 1, true
}

// findRecord returns the offset just after the record with the given hash.
func findRecord(path, hash string) (int64, bool, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	defer f.Close()
	needle := []byte(`"hash":"` + hash + `"`)
	var off, at int64
	found := false
	err = decisionlog.EachLine(f, func(_ int, line []byte, complete bool) error {
		if !complete {
			return errStop
		}
		off += int64(len(line)) + 1
		if bytes.Contains(line, needle) {
			var rec struct {
				Hash string `json:"hash"`
			}
			if json.Unmarshal(line, &rec) == nil && rec.Hash == hash {
				found, at = true, off
				return errStop
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		return 0, false, err
	}
	return at, found, nil
}

// writeFileSync writes dir/name atomically (temporary file, fsync, rename).
// The caller syncs dir.
func writeFileSync(dir, name string, data []byte) error {
	f, err := os.CreateTemp(dir, ".tmp-"+name+"-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, name))
	}
	if err != nil {
		_ = os.Remove(tmp)
	}
	return err
}

// sendLoop POSTs published batches in order.
func (s *Shipper) sendLoop() {
	defer close(s.sendDone)
	failures := 0
	draining := false
	for {
		s.mu.Lock()
		var next spooled
		ok := len(s.queue) > 0
		if ok {
			next = s.queue[0]
		}
		s.mu.Unlock()
		if !ok {
			if draining {
				return
			}
			select {
			case <-s.kick:
			case <-s.draining:
				draining = true
			}
			continue
		}
		err := s.send(next)
		if err == nil {
			if failures > 0 {
				s.logger.Info("decisionlog: shipper: decision-log service reachable again", "url", s.url, "failed_attempts", failures)
			}
			failures = 0
			s.failing.Store(false)
			continue
		}
		if s.sendCtx.Err() != nil {
			return
		}
		failures++
		s.sendErrors.Add(1)
		s.failing.Store(true)
		if failures == 1 || failures%20 == 0 {
			s.logger.Warn("decisionlog: shipper: decision-log service unavailable; batches stay in the spool and are retried",
				"url", s.url, "err", err, "attempts", failures, "spooled_batches", s.Stats().SpoolBatches)
		}
		if draining {
			return // Close does not wait for a service that is down
		}
		t := time.NewTimer(s.backoff(failures))
		select {
		case <-t.C:
		case <-s.draining:
			t.Stop()
			return
		}
	}
}

// backoff is the delay after the given number of consecutive failures:
// exponential from MinRetryDelay, capped at MaxRetryDelay, with ±20% jitter.
func (s *Shipper) backoff(failures int) time.Duration {
	d := s.opts.MinRetryDelay
	for i := 1; i < failures && d < s.opts.MaxRetryDelay; i++ {
		d *= 2
	}
	d = min(d, s.opts.MaxRetryDelay)
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// send POSTs one spooled batch and removes it from the spool once accepted.
func (s *Shipper) send(b spooled) error {
	path := filepath.Join(s.opts.SpoolDir, b.name())
	body, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read spooled batch: %w", err)
	}
	ctx, cancel := context.WithTimeout(s.sendCtx, s.opts.RequestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Content-Encoding", "gzip")
	req.Header.Set("User-Agent", "scopegate")
	if s.opts.Token != "" {
		req.Header.Set("Authorization", "Bearer "+s.opts.Token)
	}
	resp, err := s.opts.Client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("POST %s: %s", s.url, resp.Status)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		// It would be sent again; say so rather than loop on it.
		s.logger.Error("decisionlog: shipper: remove sent batch", "file", path, "err", err)
	}
	s.mu.Lock()
	s.queue = s.queue[1:]
	s.spoolSize -= b.size
	s.mu.Unlock()
	s.shipped.Add(uint64(b.records))
	s.batches.Add(1)
	return nil
}

// batchName names a spooled batch by its sequence number and record count,
// e.g. 0000000000000042-128.json.gz.
func batchName(seq uint64, records int) string {
	return fmt.Sprintf("%016d-%d%s", seq, records, batchExt)
}

func parseBatchName(name string) (seq uint64, records int, ok bool) {
	mid, ok := strings.CutSuffix(name, batchExt)
	if !ok {
		return 0, 0, false
	}
	digits, count, ok := strings.Cut(mid, "-")
	if !ok || len(digits) != 16 {
		return 0, 0, false
	}
	seq, err := strconv.ParseUint(digits, 10, 64)
	if err != nil {
		return 0, 0, false
	}
	records, err = strconv.Atoi(count)
	if err != nil || records <= 0 {
		return 0, 0, false
	}
	return seq, records, true
}

// lastBatchHash returns the hash of the last event of a spooled batch.
func lastBatchHash(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	events, err := DecodeBatch(bytes.NewReader(b))
	if err != nil {
		return "", err
	}
	if len(events) == 0 {
		return "", errors.New("empty batch")
	}
	return events[len(events)-1].Hash, nil
}

// DecodeBatch decodes a batch as the service receives it: a gzip-compressed
// JSON array of events.
func DecodeBatch(r io.Reader) ([]decisionlog.Event, error) {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("decisionlog: batch: %w", err)
	}
	defer zr.Close()
	raw, err := io.ReadAll(zr)
	if err != nil {
		return nil, fmt.Errorf("decisionlog: batch: %w", err)
	}
	var lines []json.RawMessage
	if err := json.Unmarshal(raw, &lines); err != nil {
		return nil, fmt.Errorf("decisionlog: batch: %w", err)
	}
	events := make([]decisionlog.Event, len(lines))
	for i, l := range lines {
		if events[i], err = decisionlog.DecodeEvent(l); err != nil {
			return nil, fmt.Errorf("decisionlog: batch event %d: %w", i, err)
		}
	}
	return events, nil
}
