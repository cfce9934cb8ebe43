package decisionlog

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"slices"
	"strings"
	"time"
)

// ChainError locates the first record that breaks the chain.
type ChainError struct {
	File   string
	Line   int // 1-based
	Kind   Kind
	Detail string
}

func (e *ChainError) Error() string {
	return fmt.Sprintf("%s:%d: %s: %s", e.File, e.Line, e.Kind, e.Detail)
}

// Report summarizes a verification.
type Report struct {
	Files   int // files read
	Records int // records that verified
	// FirstPrevHash is the prev_hash of the first record: GenesisHash for a
	// complete log, the last hash of deleted files after retention.
	FirstPrevHash string
	// LastHash is the hash of the last verified record; publishing it (or
	// storing it elsewhere) lets an auditor detect a rewrite of the tail.
	LastHash string
}

// StartsAtGenesis reports whether the verified chain starts at the genesis
// record, i.e. no older files are missing.
func (r Report) StartsAtGenesis() bool { return r.FirstPrevHash == GenesisHash }

// Verify reads every line of paths, in order (as returned by Files), and
// checks that each record hashes to its hash field and that its prev_hash is
// the previous record's hash, across files. The chain may start from any
// prev_hash (see Report.StartsAtGenesis). A broken chain is reported as a
// *ChainError for the first bad record; other errors are I/O errors. The
// Report counts what verified before the break. On a live log the active
// file's last line can be caught half-written and reported as KindTruncated.
func Verify(paths []string) (Report, error) {
	var v verifier
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return v.report, fmt.Errorf("decisionlog: verify: %w", err)
		}
		v.report.Files++
		err = v.file(p, f)
		f.Close()
		if err != nil {
			return v.report, err
		}
	}
	return v.report, nil
}

type verifier struct {
	report Report
}

func (v *verifier) file(name string, r io.Reader) error {
	err := EachLine(r, func(n int, line []byte, complete bool) error {
		if !complete {
			return &ChainError{File: name, Line: n, Kind: KindTruncated, Detail: "last line has no newline (a write was cut short)"}
		}
		rec, err := verifyLine(line)
		if err != nil {
			ce := &ChainError{File: name, Line: n, Kind: KindMalformed, Detail: err.Error()}
			if le, ok := errors.AsType[*lineError](err); ok {
				ce.Kind, ce.Detail = le.kind, le.detail
			}
			return ce
		}
		if v.report.Records == 0 {
			v.report.FirstPrevHash = rec.prev
		} else if rec.prev != v.report.LastHash {
			return &ChainError{File: name, Line: n, Kind: KindBrokenLink, Detail: fmt.Sprintf(
				"prev_hash %s is not the previous record's hash %s (a record was deleted, inserted or reordered)",
				short(rec.prev), short(v.report.LastHash))}
		}
		v.report.LastHash = rec.hash
		v.report.Records++
		return nil
	})
	var ce *ChainError
	if err != nil && !errors.As(err, &ce) {
		return fmt.Errorf("decisionlog: verify %s: %w", name, err)
	}
	return err
}

// Filter selects records. Zero fields match everything.
type Filter struct {
	DecisionID string
	Subject    string
	ClientID   string
	Scope      string // present in input.granted_scopes (or the space-separated input.scope)
	Reason     string
	Allow      *bool
	From       time.Time // inclusive
	To         time.Time // exclusive
	Limit      int       // at most this many records (0: all)
}

// Match reports whether ev passes the filter (Limit aside).
func (f Filter) Match(ev Event) bool {
	switch {
	case f.DecisionID != "" && ev.DecisionID != f.DecisionID,
		f.Subject != "" && ev.Subject != f.Subject,
		f.ClientID != "" && ev.ClientID != f.ClientID,
		f.Reason != "" && ev.Reason != f.Reason,
		f.Allow != nil && ev.Allow != *f.Allow,
		!f.From.IsZero() && ev.Timestamp.Before(f.From),
		!f.To.IsZero() && !ev.Timestamp.Before(f.To):
		return false
	}
	return f.Scope == "" || slices.Contains(GrantedScopes(ev), f.Scope)
}

// GrantedScopes returns the scopes a record's input says the token grants:
// input.granted_scopes, or else the space-separated input.scope.
func GrantedScopes(ev Event) []string {
	in, ok := ev.Input.(map[string]any)
	if !ok {
		return nil
	}
	var out []string
	switch gs := in["granted_scopes"].(type) {
	case []any:
		for _, s := range gs {
			if s, ok := s.(string); ok {
				out = append(out, s)
			}
		}
	case []string:
		out = append(out, gs...)
	default:
		if s, ok := in["scope"].(string); ok {
			out = strings.Fields(s)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Query yields the records of paths that match f, in file order, stopping
// after f.Limit. It does not check hashes (Verify does); a line that does not
// parse ends the sequence with an error naming file:line.
func Query(paths []string, f Filter) iter.Seq2[Event, error] {
	return func(yield func(Event, error) bool) {
		n := 0
		err := scan(paths, func(ev Event) bool {
			if !f.Match(ev) {
				return true
			}
			n++
			return yield(ev, nil) && (f.Limit <= 0 || n < f.Limit)
		})
		if err != nil {
			yield(Event{}, err)
		}
	}
}

// QueryAll collects Query.
func QueryAll(paths []string, f Filter) ([]Event, error) {
	var out []Event
	for ev, err := range Query(paths, f) {
		if err != nil {
			return out, err
		}
		out = append(out, ev)
	}
	return out, nil
}

// scan calls fn for every record until it returns false. A batch check's
// record comes with the shared token fields filled in from its batch's
// first record (see batchHeads).
func scan(paths []string, fn func(Event) bool) error {
	var heads batchHeads
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return fmt.Errorf("decisionlog: read: %w", err)
		}
		err = EachLine(f, func(n int, line []byte, complete bool) error {
			if !complete {
				return fmt.Errorf("decisionlog: %s:%d: %w (no newline)", p, n, ErrTruncatedTail)
			}
			ev, err := DecodeEvent(line)
			if err != nil {
				return fmt.Errorf("decisionlog: %s:%d: %w", p, n, err)
			}
			heads.resolve(ev)
			if !fn(ev) {
				return errStop
			}
			return nil
		})
		f.Close()
		if errors.Is(err, errStop) {
			return nil
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// Summary aggregates records for `scopegate audit stats`.
type Summary struct {
	Records   int
	Allowed   int
	Denied    int
	ByReason  map[string]int
	BySubject map[string]int
	ByScope   map[string]int // per granted scope, see GrantedScopes
	Buckets   []Bucket       // by start time; empty if no bucket size was given
}

// Bucket counts the records whose timestamp falls in [Start, Start+size).
type Bucket struct {
	Start     time.Time
	Allowed   int
	Denied    int
	ByReason  map[string]int
	BySubject map[string]int
	ByScope   map[string]int
}

// Stats aggregates the records of paths that match f. bucket > 0 also
// counts them per time bucket of that size, aligned as time.Time.Truncate
// aligns (on UTC midnight for sizes that divide a day).
func Stats(paths []string, f Filter, bucket time.Duration) (Summary, error) {
	s := Summary{ByReason: map[string]int{}, BySubject: map[string]int{}, ByScope: map[string]int{}}
	buckets := map[time.Time]*Bucket{}
	for ev, err := range Query(paths, f) {
		if err != nil {
			return s, err
		}
		s.Records++
		if ev.Allow {
			s.Allowed++
		} else {
			s.Denied++
		}
		s.ByReason[ev.Reason]++
		s.BySubject[ev.Subject]++
		for _, sc := range GrantedScopes(ev) {
			s.ByScope[sc]++
		}
		if bucket > 0 {
			start := ev.Timestamp.UTC().Truncate(bucket)
			b := buckets[start]
			if b == nil {
				b = &Bucket{Start: start, ByReason: map[string]int{}, BySubject: map[string]int{}, ByScope: map[string]int{}}
				buckets[start] = b
			}
			if ev.Allow {
				b.Allowed++
			} else {
				b.Denied++
			}
			b.ByReason[ev.Reason]++
			b.BySubject[ev.Subject]++
			for _, sc := range GrantedScopes(ev) {
				b.ByScope[sc]++
			}
		}
	}
	for _, b := range buckets {
		s.Buckets = append(s.Buckets, *b)
	}
	slices.SortFunc(s.Buckets, func(a, b Bucket) int { return a.Start.Compare(b.Start) })
	return s, nil
}

// batchShared are the input members a batch writes once, in its first
// check's record; the other checks' records name that one in input.batch.id.
var batchShared = [...]string{"claims", "client_id", "context", "granted_scopes", "requested_scopes", "scope", "subject", "token"}

// maxBatchHeads bounds the first records kept while reading: batches are
// written together, so a check's first record is never far behind it.
const maxBatchHeads = 1024

// batchHeads remembers the inputs of recent batch-first records to fill in
// the shared members of the later checks' records as they are read.
type batchHeads struct {
	inputs map[string]map[string]any
	order  []string
}

func (h *batchHeads) resolve(ev Event) {
	in, ok := ev.Input.(map[string]any)
	if !ok {
		return
	}
	b, ok := in["batch"].(map[string]any)
	if !ok {
		return
	}
	id, _ := b["id"].(string)
	if check, _ := b["check"].(json.Number); check == "0" {
		if h.inputs == nil {
			h.inputs = map[string]map[string]any{}
		}
		if len(h.order) == maxBatchHeads {
			delete(h.inputs, h.order[0])
			h.order = h.order[1:]
		}
		h.inputs[id] = in
		h.order = append(h.order, id)
		return
	}
	head, ok := h.inputs[id]
	if !ok {
		return // its first record was not read (another file, or a filter's window)
	}
	fillShared(in, head)
}

// FillBatch fills the input of a batch check's record, in, with the shared
// members its batch wrote once, in its first record, head.
func FillBatch(in map[string]any, head Event) {
	if h, ok := head.Input.(map[string]any); ok && in != nil {
		fillShared(in, h)
	}
}

func fillShared(in, head map[string]any) {
	for _, k := range batchShared {
		if v, ok := head[k]; ok {
			if _, have := in[k]; !have {
				in[k] = v
			}
		}
	}
}
