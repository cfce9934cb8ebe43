// Package logindex keeps a small in-memory index of the decision log, so
// that the auditor endpoints cost what they return, not the size of the
// log: the newest records, a subject, a client, a reason or one decision id
// are found from the index and only the matching lines are read and
// decoded. The index follows the files as they are written (appends,
// rotation, retention) and verifies each record's hash and link once, as
// it is indexed, so the chain's status is known without reading the log
// again. The JSONL files stay the source of truth: `scopegate audit
// verify` re-reads all of them.
package logindex

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"sync"
	"time"

	"github.com/scopegate/scopegate/internal/decisionlog"
)

// Index is the index of one decision log (its active file and the rotated
// files next to it). Its methods are safe for concurrent use.
type Index struct {
	path string
	// mu guards everything below; a refresh and a query never overlap.
	mu    sync.Mutex
	files []*file
	names interner
}

// file is what the index knows of one file of the log, in chain order.
type file struct {
	name    string
	info    os.FileInfo // identity, so a rotated file is recognised under its new name
	indexed int64       // bytes of complete lines indexed
	lines   int
	entries []entry
	// tail is a hash of the last indexed line: if those bytes change, the
	// file was edited (an edit before them shifts them too), and it is
	// indexed and verified afresh.
	tail    uint64
	tailOff int64

	// The file's own chain: its first prev_hash, last hash, how many
	// records verified, and the first record that did not.
	firstPrev, lastHash string
	verified            int
	broken              *decisionlog.ChainError
}

// entry is one record: where its line is, and what filters read.
type entry struct {
	off      int64
	len      int32
	allow    bool
	ts       int64  // unix nanoseconds
	id       uint64 // FNV-1a of decision_id
	subject  uint32 // interned
	client   uint32
	reason   uint32
	hasBatch bool // input.batch: a batch check whose shared fields are in its first record
}

// interner interns the few distinct subjects, clients and reasons.
type interner struct {
	ids  map[string]uint32
	vals []string
}

func (s *interner) id(v string) uint32 {
	if id, ok := s.ids[v]; ok {
		return id
	}
	if s.ids == nil {
		s.ids = map[string]uint32{"": 0}
		s.vals = []string{""}
		if v == "" {
			return 0
		}
	}
	id := uint32(len(s.vals))
	s.ids[v] = id
	s.vals = append(s.vals, v)
	return id
}

// lookup is v's id, and false if no record holds v.
func (s *interner) lookup(v string) (uint32, bool) {
	id, ok := s.ids[v]
	return id, ok
}

// New returns an empty index of the log at path; Refresh fills it.
func New(path string) *Index {
	ix := &Index{path: path}
	ix.names.id("")
	return ix
}

func (ix *Index) lock()   { ix.mu.Lock() }
func (ix *Index) unlock() { ix.mu.Unlock() }

// Refresh brings the index up to date with the files: new records
// appended, a rotation (the active file renamed, a new one started), files
// removed by retention. Each new record is verified once.
func (ix *Index) Refresh() error {
	ix.lock()
	defer ix.unlock()
	return ix.refresh()
}

func (ix *Index) refresh() error {
	names, err := decisionlog.Files(ix.path)
	if err != nil {
		return err
	}
	known := ix.files
	next := make([]*file, 0, len(names))
	for i, name := range names {
		st, err := os.Stat(name)
		if err != nil {
			return fmt.Errorf("logindex: %w", err)
		}
		var f *file
		for _, k := range known {
			if os.SameFile(k.info, st) {
				f = k
				break
			}
		}
		if f == nil || st.Size() < f.indexed || !f.tailIntact(name) {
			f = &file{} // new, cut shorter (a repaired tail) or edited: index it afresh
		}
		f.name, f.info = name, st
		if err := ix.index(f, i == len(names)-1); err != nil {
			return err
		}
		next = append(next, f)
	}
	ix.files = next
	return nil
}

// index reads f's complete lines past what is indexed. active: the last
// line may be being written, so an unterminated one waits for the next
// refresh rather than being reported truncated.
func (ix *Index) index(f *file, active bool) error {
	fh, err := os.Open(f.name)
	if err != nil {
		return fmt.Errorf("logindex: %w", err)
	}
	defer fh.Close()
	if _, err := fh.Seek(f.indexed, io.SeekStart); err != nil {
		return fmt.Errorf("logindex: %w", err)
	}
	br := bufio.NewReaderSize(fh, 256<<10)
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// A line longer than the buffer: read the rest of it.
			long := append([]byte(nil), line...)
			for errors.Is(err, bufio.ErrBufferFull) {
				line, err = br.ReadSlice('\n')
				long = append(long, line...)
			}
			line = long
		}
		if err == io.EOF {
			if len(line) > 0 && !active && f.broken == nil {
				f.broken = &decisionlog.ChainError{File: f.name, Line: f.lines + 1, Kind: decisionlog.KindTruncated,
					Detail: "last line has no newline (a write was cut short)"}
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("logindex: read %s: %w", f.name, err)
		}
		f.lines++
		ix.add(f, line[:len(line)-1])
		f.tail, f.tailOff = hashBytes(line), f.indexed
		f.indexed += int64(len(line))
	}
}

// summary is what add reads of a record, without decoding input or result.
type summary struct {
	DecisionID string    `json:"decision_id"`
	Timestamp  time.Time `json:"timestamp"`
	Subject    string    `json:"subject"`
	ClientID   string    `json:"client_id"`
	Reason     string    `json:"reason"`
	Allow      bool      `json:"allow"`
	Input      struct {
		Batch json.RawMessage `json:"batch"`
	} `json:"input"`
}

// add indexes and verifies one line of f at offset f.indexed.
func (ix *Index) add(f *file, line []byte) {
	if f.broken == nil {
		prev, hash, err := decisionlog.CheckLine(line)
		switch {
		case err != nil:
			ce, _ := err.(*decisionlog.ChainError)
			if ce == nil {
				ce = &decisionlog.ChainError{Kind: decisionlog.KindMalformed, Detail: err.Error()}
			}
			ce.File, ce.Line = f.name, f.lines
			f.broken = ce
		case f.verified > 0 && prev != f.lastHash:
			f.broken = &decisionlog.ChainError{File: f.name, Line: f.lines, Kind: decisionlog.KindBrokenLink,
				Detail: fmt.Sprintf("prev_hash %.12s… is not the previous record's hash %.12s… (a record was deleted, inserted or reordered)", prev, f.lastHash)}
		default:
			if f.verified == 0 {
				f.firstPrev = prev
			}
			f.lastHash = hash
			f.verified++
		}
	}
	var s summary
	if json.Unmarshal(line, &s) != nil {
		return // not a record; the chain says so
	}
	f.entries = append(f.entries, entry{
		off: f.indexed, len: int32(len(line)), allow: s.Allow, ts: s.Timestamp.UnixNano(), id: hashID(s.DecisionID),
		subject: ix.names.id(s.Subject), client: ix.names.id(s.ClientID), reason: ix.names.id(s.Reason),
		hasBatch: len(s.Input.Batch) > 0,
	})
}

func hashID(id string) uint64 { return hashBytes([]byte(id)) }

func hashBytes(b []byte) uint64 {
	h := fnv.New64a()
	h.Write(b)
	return h.Sum64()
}

// tailIntact reports whether the last line f indexed still reads the same
// in the file at name.
func (f *file) tailIntact(name string) bool {
	if f.indexed == 0 {
		return true
	}
	fh, err := os.Open(name)
	if err != nil {
		return false
	}
	defer fh.Close()
	buf := make([]byte, f.indexed-f.tailOff)
	if _, err := fh.ReadAt(buf, f.tailOff); err != nil {
		return false
	}
	return hashBytes(buf) == f.tail
}

// Newest returns the newest records that match f, newest first, at most
// limit, reading only the lines whose indexed fields match (and, for a
// scope filter, decoding those to check it). A batch check's record comes
// with its shared fields filled in from its batch's first record.
func (ix *Index) Newest(f decisionlog.Filter, limit int) ([]decisionlog.Event, error) {
	ix.lock()
	defer ix.unlock()
	if err := ix.refresh(); err != nil {
		return nil, err
	}
	want, ok := ix.compile(f)
	out := []decisionlog.Event{}
	if !ok {
		return out, nil // a subject, client or reason no record holds
	}
	for i := len(ix.files) - 1; i >= 0 && len(out) < limit; i-- {
		fl := ix.files[i]
		fh, err := os.Open(fl.name)
		if err != nil {
			return out, fmt.Errorf("logindex: %w", err)
		}
		for j := len(fl.entries) - 1; j >= 0 && len(out) < limit; j-- {
			e := &fl.entries[j]
			if !want(e) {
				continue
			}
			ev, err := readEvent(fh, e)
			if err != nil {
				fh.Close()
				return out, err
			}
			if e.hasBatch {
				ix.fillBatch(&ev)
			}
			if f.Match(ev) {
				out = append(out, ev)
			}
		}
		fh.Close()
	}
	return out, nil
}

// compile turns f's indexed fields into a test on entries; false means no
// record can match.
func (ix *Index) compile(f decisionlog.Filter) (func(*entry) bool, bool) {
	var subject, client, reason uint32
	var ok bool
	for _, c := range []struct {
		v  string
		id *uint32
	}{{f.Subject, &subject}, {f.ClientID, &client}, {f.Reason, &reason}} {
		if c.v == "" {
			continue
		}
		if *c.id, ok = ix.names.lookup(c.v); !ok {
			return nil, false
		}
	}
	var id uint64
	if f.DecisionID != "" {
		id = hashID(f.DecisionID)
	}
	from, to := f.From.UnixNano(), f.To.UnixNano()
	return func(e *entry) bool {
		switch {
		case f.Subject != "" && e.subject != subject,
			f.ClientID != "" && e.client != client,
			f.Reason != "" && e.reason != reason,
			f.DecisionID != "" && e.id != id,
			f.Allow != nil && e.allow != *f.Allow,
			!f.From.IsZero() && e.ts < from,
			!f.To.IsZero() && e.ts >= to:
			return false
		}
		return true
	}, true
}

// readEvent reads and decodes the record at e.
func readEvent(fh *os.File, e *entry) (decisionlog.Event, error) {
	buf := make([]byte, e.len)
	if _, err := fh.ReadAt(buf, e.off); err != nil {
		return decisionlog.Event{}, fmt.Errorf("logindex: %w", err)
	}
	return decisionlog.DecodeEvent(buf)
}

// fillBatch fills a batch check's shared input members from its batch's
// first record, found by decision id (as decisionlog's readers do).
func (ix *Index) fillBatch(ev *decisionlog.Event) {
	in, _ := ev.Input.(map[string]any)
	b, _ := in["batch"].(map[string]any)
	first, _ := b["id"].(string)
	if first == "" || first == ev.DecisionID {
		return
	}
	id := hashID(first)
	for i := len(ix.files) - 1; i >= 0; i-- {
		fl := ix.files[i]
		for j := len(fl.entries) - 1; j >= 0; j-- {
			if e := &fl.entries[j]; e.id == id {
				fh, err := os.Open(fl.name)
				if err != nil {
					return
				}
				head, err := readEvent(fh, e)
				fh.Close()
				if err != nil || head.DecisionID != first {
					return
				}
				decisionlog.FillBatch(in, head)
				return
			}
		}
	}
}

// Verify is the chain's status over the indexed records, as
// decisionlog.Verify would report it for the files as they were indexed,
// without reading them again.
func (ix *Index) Verify() (decisionlog.Report, error) {
	ix.lock()
	defer ix.unlock()
	if err := ix.refresh(); err != nil {
		return decisionlog.Report{}, err
	}
	var rep decisionlog.Report
	for _, f := range ix.files {
		rep.Files++
		if f.verified > 0 {
			if rep.Records == 0 {
				rep.FirstPrevHash = f.firstPrev
			} else if f.firstPrev != rep.LastHash {
				return rep, &decisionlog.ChainError{File: f.name, Line: 1, Kind: decisionlog.KindBrokenLink,
					Detail: fmt.Sprintf("prev_hash %.12s… is not the previous record's hash %.12s… (a record was deleted, inserted or reordered)", f.firstPrev, rep.LastHash)}
			}
			rep.Records += f.verified
			rep.LastHash = f.lastHash
		}
		if f.broken != nil {
			return rep, f.broken
		}
	}
	return rep, nil
}

// Records is how many records are indexed.
func (ix *Index) Records() int {
	ix.lock()
	defer ix.unlock()
	n := 0
	for _, f := range ix.files {
		n += len(f.entries)
	}
	return n
}
