package decisionlog

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
)

// ReasonLogReopened is the reason of the record a writer adds when it finds
// its file deleted, renamed or replaced under it and starts a new one.
const ReasonLogReopened = "log_reopened"

// ReopenedPath is that record's path (decisions have the policy's).
const ReopenedPath = "scopegate/decision_log/reopened"

// pathMoved reports whether the configured path no longer names the file
// the writer appends to: it was deleted, renamed or replaced. Records
// written to it from then on would reach an unlinked or foreign inode, not
// the log auditors read.
func (w *Writer) pathMoved() bool {
	if w.name.dir == "" || w.activeInfo == nil {
		return false
	}
	st, err := os.Stat(w.opts.Path)
	return err != nil || !os.SameFile(st, w.activeInfo)
}

// reopenMoved starts a new file at the configured path after pathMoved, and
// writes a record of its own saying so. The chain continues from the last
// record written: if the moved file is gone, `audit verify` shows the gap
// at that record (the records in it are lost), with this record to say why.
func (w *Writer) reopenMoved() error {
	if err := w.flushBuf(); err != nil {
		return err
	}
	_ = w.out.Close() // the file is gone from the path; its errors say nothing of the new one
	w.out = nil
	now := w.clock()
	if err := w.openActive(now); err != nil {
		return fmt.Errorf("decisionlog: reopen after the file moved: %w", err)
	}
	id := make([]byte, 16)
	_, _ = rand.Read(id)
	r, err := w.prepare(Event{
		DecisionID: hex.EncodeToString(id),
		Timestamp:  now,
		Path:       ReopenedPath,
		Reason:     ReasonLogReopened,
		Result: map[string]any{
			"explain": "the decision-log file was deleted, renamed or replaced while the server wrote to it; this file continues the chain. " +
				"Records written to the old file after it moved were not acknowledged; any acknowledged before are wherever that file went.",
			"continues_from": w.prev,
		},
	})
	if err != nil {
		return err
	}
	n := int64(sealedLen(r.head, r.tail))
	w.buf, w.prev = appendSealed(w.buf, r.head, r.tail, w.prev)
	w.bufRecords++
	w.size += n
	recycle(r)
	if err := w.flushBuf(); err != nil {
		return err
	}
	if err := w.sync(); err != nil {
		return err
	}
	w.reopens.Add(1)
	w.logger.Error("decisionlog: the log file was deleted, renamed or replaced under the writer; reopened it at its path and recorded it",
		"path", w.opts.Path)
	return nil
}
