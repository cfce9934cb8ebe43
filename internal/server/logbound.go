package server

import (
	"fmt"
	"unicode/utf8"

	"github.com/scopegate/scopegate/internal/decisionlog"
	"github.com/scopegate/scopegate/internal/engine"
)

// What one record may hold of its decision. A decision echoes the caller
// (unknown scopes, a long action, explain lines that list every scope) and
// expands it (a catalog's closure), so a small request could write a large
// record. The record keeps at most logResultBudget bytes of the decision's
// strings, each at most logStringMax long; whatever is cut is replaced by a
// marker that says how much. The answer is never cut. A typical decision
// (under 1 KiB) is recorded whole, with the answer's own bytes.
const (
	logResultBudget = 2048
	logStringMax    = 256
)

// needsBound reports whether the record must hold a cut (or trace-less)
// view of d rather than the answer's bytes, enc.
func needsBound(d *engine.Decision, enc []byte) bool {
	return len(d.Trace) > 0 || len(enc) > logResultBudget
}

// boundedForLog is the decision as its record keeps it: without OPA's trace
// (the caller who asked has it; it replays the input's values and is tens
// of times the request), and with long lists and strings cut, with a marker.
func boundedForLog(d engine.Decision) engine.Decision {
	d.Trace = nil
	left := logResultBudget
	strs, lists := d.Texts()
	for _, s := range strs[1:] { // the reason is a short code, never cut
		*s = cutString(*s, &left)
	}
	for _, l := range lists {
		*l = cutList(*l, &left)
	}
	return d
}

// cutString charges s (as a JSON string) to the budget left, cutting it to
// logStringMax, or to what is left, with a marker.
func cutString(s string, left *int) string {
	limit := max(min(logStringMax, *left), 0)
	if len(s) <= limit {
		*left -= len(s) + 3
		return s
	}
	n := limit
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	out := s[:n] + fmt.Sprintf("...(%d bytes not logged)", len(s)-n)
	*left -= len(out) + 3
	return out
}

// cutList keeps the elements of l the budget left allows, each cut as
// cutString does, and a last element saying how many were not logged. l is
// returned as is when nothing is cut.
func cutList(l []string, left *int) []string {
	var out []string // nil while l is kept as is
	for i, s := range l {
		if *left < min(len(s), logStringMax)+3 {
			if out == nil {
				out = append(make([]string, 0, i+1), l[:i]...)
			}
			return append(out, fmt.Sprintf("...(%d more not logged)", len(l)-i))
		}
		c := cutString(s, left)
		if c != s && out == nil {
			out = append(make([]string, 0, len(l)), l[:i]...)
		}
		if out != nil {
			out = append(out, c)
		}
	}
	if out == nil {
		return l
	}
	return out
}

// batchRef ties a batch check's record to the batch's first record, the
// only one that holds the token fields the checks share (granted_scopes,
// requested_scopes, subject, client_id, context): a batch writes them once.
// decisionlog's readers fill them back in for the later checks.
type batchRef struct {
	ID     string // the first check's decision_id
	Check  int    // this check's index, from 0
	Checks int
}

func (b *batchRef) LogMembers(w decisionlog.MemberWriter) {
	w.Value("check", b.Check)
	w.Value("checks", b.Checks)
	w.String("id", b.ID)
}
