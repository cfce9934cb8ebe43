// Package decisionlog writes and audits scopegate's decision log: one JSON
// object per line, field names as in OPA's decision-log events plus
// scopegate's own (reason, subject, client_id, allow), secrets masked before
// anything touches the disk, and every record linked to the previous one by a
// SHA-256 hash chain so that an auditor can prove no record was edited,
// removed or reordered.
//
// A Writer owns the log file through a single goroutine that assigns the
// chain in file order, rotates files without breaking the chain and resumes
// it after a restart. Files, Verify, Query and Stats read the logs back. A
// Shipper sends the records, once durable, to an OPA-compatible remote
// decision-log service, through a disk spool.
package decisionlog

import (
	"errors"
	"fmt"
	"time"
)

// GenesisHash is the prev_hash of the very first record of a chain.
const GenesisHash = "0000000000000000000000000000000000000000000000000000000000000000"

// MaskValue replaces every masked value.
const MaskValue = "***"

var (
	// ErrClosed is returned by Log and LogDurable after Close.
	ErrClosed = errors.New("decisionlog: writer closed")
	// ErrUnavailable means the log cannot accept a record: the queue is full
	// under the FailClosed policy, or an earlier write or fsync failed.
	// Callers must treat the decision as not logged (fail closed).
	ErrUnavailable = errors.New("decisionlog: log unavailable")
	// ErrTruncatedTail is wrapped by Open's error when the log ends in a
	// partial line and Options.RepairTruncatedTail is not set.
	ErrTruncatedTail = errors.New("truncated record at the end of the file")
)

// BundleInfo identifies the bundle revision a decision was made with.
type BundleInfo struct {
	Revision string `json:"revision"`
}

// Event is one decision-log record. Field names follow OPA's decision-log
// events (decision_id, timestamp, path, input, result, bundles, metrics,
// labels, requested_by, masked) plus scopegate's reason, subject, client_id,
// allow and the chain fields prev_hash and hash.
//
// The caller fills everything except Masked (the writer adds the pointers it
// masks), PrevHash and Hash (assigned by the writer). Timestamp is written as
// an RFC 3339 UTC string with nanoseconds; a zero Timestamp is set from the
// writer's clock.
type Event struct {
	DecisionID string                `json:"decision_id"`
	Timestamp  time.Time             `json:"timestamp"`
	Path       string                `json:"path"`
	Input      any                   `json:"input,omitempty"`
	Result     any                   `json:"result,omitempty"`
	Bundles    map[string]BundleInfo `json:"bundles,omitempty"`
	// Metrics is a JSON object: a map[string]any, or an Object (which
	// spares a map per record); nil or an empty map leaves it out.
	Metrics     any               `json:"metrics,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	RequestedBy string            `json:"requested_by,omitempty"`
	Reason      string            `json:"reason"`
	Subject     string            `json:"subject,omitempty"`
	ClientID    string            `json:"client_id,omitempty"`
	// Caller is the authenticated service that asked ("token:NAME",
	// "mtls:CN"); empty when authentication is off.
	Caller string `json:"caller,omitempty"`
	Allow  bool   `json:"allow"`
	// Masked lists the RFC 6901 pointers (from the record root, e.g.
	// "/input/context/client_secret") whose values were replaced by MaskValue.
	Masked   []string `json:"masked,omitempty"`
	PrevHash string   `json:"prev_hash"`
	Hash     string   `json:"hash"`

	// MaskPointers are more RFC 6901 pointers to mask in this record only,
	// besides the Writer's (the server passes what the policy's
	// data.system.log.mask asks for). They are not a member of the record:
	// what was masked is listed in Masked. An invalid pointer makes Log fail.
	MaskPointers []string `json:"-"`
}

// DecodeEvent parses one log line (without its newline) into an Event.
// Numbers inside input, result and metrics are decoded as json.Number so that
// they keep the exact text that was hashed. It does not check the hash; use
// Verify for that.
func DecodeEvent(line []byte) (Event, error) {
	var ev Event
	if err := decodeStrict(line, &ev); err != nil {
		return Event{}, fmt.Errorf("decode record: %w", err)
	}
	return ev, nil
}

// hasMetrics reports whether a record has a metrics member.
func hasMetrics(m any) bool {
	if mm, ok := m.(map[string]any); ok {
		return len(mm) > 0
	}
	return m != nil
}
