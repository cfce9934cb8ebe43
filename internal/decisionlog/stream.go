package decisionlog

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/scopegate/scopegate/internal/redact"
)

// Streaming record encoding.
//
// The general path (eventDoc, Masker.apply, splitCanonical) builds the record
// as a generic document, copies input so that masking can edit it, masks, and
// then sorts and encodes every object. For the records a server writes that
// is most of the cost of logging a decision. encodeRecord writes the same
// bytes in one pass instead: the top-level members in their fixed canonical
// order, input walked once with the masking rules applied on the way.
//
// It is used when every configured mask pointer lies inside input, no
// pointer is a prefix of another and no token spells a number unusually
// (fastMasker), which includes the default of no pointers; otherwise prepare
// takes the general path. Both must give the same bytes and the same errors
// for every event: TestStreamMatchesDoc and FuzzStreamMatchesDoc hold them
// to that.

// maxFastPointers bounds the pointers the streaming path follows (one bit
// each in a uint64).
const maxFastPointers = 64

// fastMasker reports whether the streaming path can apply m's rules.
func (m *Masker) fastMasker() bool {
	if len(m.pointers) > maxFastPointers {
		return false
	}
	for i, p := range m.pointers {
		if p.tokens[0] != "input" {
			return false
		}
		for _, t := range p.tokens {
			if n, err := strconv.Atoi(t); err == nil && strconv.Itoa(n) != t {
				return false // "+1", "01": another spelling of an index aliases it
			}
		}
		for j, q := range m.pointers {
			if i != j && len(p.tokens) <= len(q.tokens) && slices.Equal(p.tokens, q.tokens[:len(p.tokens)]) {
				return false // nested or repeated: their order matters to what is recorded
			}
		}
	}
	return true
}

// encodeRecord appends to buf the canonical members of ev that sort before
// "prev_hash", then those after it, as splitCanonical(eventDoc(ev) masked)
// would give them: head is buf[:n] and tail buf[n:]. mw holds the masker's
// pointers and is the walk's scratch.
func encodeRecord(buf []byte, mw *maskWriter, ev Event) (_ []byte, n int, err error) {
	ts := ev.Timestamp.UTC()
	if y := ts.Year(); y < 0 || y > 9999 {
		return nil, 0, fmt.Errorf("timestamp %v: year outside [0,9999]", ts)
	}
	buf = append(buf, `"allow":`...)
	buf = strconv.AppendBool(buf, ev.Allow)
	if len(ev.Bundles) > 0 {
		buf = append(buf, `,"bundles":`...)
		if buf, err = appendDirect(buf, ev.Bundles); err != nil {
			return nil, 0, fmt.Errorf("bundles: %w", err)
		}
	}
	buf = appendStringMember(buf, "caller", ev.Caller)
	buf = appendStringMember(buf, "client_id", ev.ClientID)
	buf = append(buf, `,"decision_id":`...)
	buf = appendString(buf, ev.DecisionID)
	if ev.Input != nil {
		mw.path = append(mw.path[:0], "input")
		buf = append(buf, `,"input":`...)
		active := uint64(1)<<len(mw.pointers) - 1
		if buf, err = mw.appendValue(buf, ev.Input, active, false); err != nil {
			return nil, 0, fmt.Errorf("input: %w", err)
		}
	}
	if len(ev.Labels) > 0 {
		buf = append(buf, `,"labels":`...)
		if buf, err = appendDirect(buf, ev.Labels); err != nil {
			return nil, 0, fmt.Errorf("labels: %w", err)
		}
	}
	if masked := mw.masked; len(masked) > 0 {
		masked = append(masked, ev.Masked...)
		slices.Sort(masked)
		buf = appendStringArray(append(buf, `,"masked":`...), slices.Compact(masked))
	} else if len(ev.Masked) > 0 {
		buf = appendStringArray(append(buf, `,"masked":`...), ev.Masked)
	}
	if hasMetrics(ev.Metrics) {
		buf = append(buf, `,"metrics":`...)
		if buf, err = mw.appendPlain(buf, ev.Metrics); err != nil {
			return nil, 0, fmt.Errorf("metrics: %w", err)
		}
	}
	buf = append(buf, `,"path":`...)
	buf = appendString(buf, ev.Path)
	n = len(buf)
	buf = append(buf, `"reason":`...)
	buf = appendString(buf, ev.Reason)
	buf = appendStringMember(buf, "requested_by", ev.RequestedBy)
	if ev.Result != nil {
		buf = append(buf, `,"result":`...)
		if buf, err = mw.appendPlain(buf, ev.Result); err != nil {
			return nil, 0, fmt.Errorf("result: %w", err)
		}
	}
	buf = appendStringMember(buf, "subject", ev.Subject)
	buf = append(buf, `,"timestamp":"`...)
	buf = ts.AppendFormat(buf, time.RFC3339Nano)
	buf = append(buf, '"')
	return buf, n, nil
}

// appendStringMember appends `,"key":"v"` unless v is empty.
func appendStringMember(dst []byte, key, v string) []byte {
	if v == "" {
		return dst
	}
	dst = append(dst, ',', '"')
	dst = append(dst, key...)
	dst = append(dst, '"', ':')
	return appendString(dst, v)
}

// maskWriter encodes input canonically while applying Masker.apply's rules
// to it. path holds the unescaped tokens of the value being written
// ("input", ...); a set bit i in active means pointers[i] matches path so far.
//
// With plain set it applies no rule at all: appendDirect uses it to stream
// an Object in a member that masking does not walk.
type maskWriter struct {
	pointers []maskPointer
	path     []string
	masked   []string
	plain    bool

	// objs are the objectWriters of the Objects being written, outermost
	// first, kept for the next record: an Object's writer escapes through
	// the interface call, so a fresh one per Object would be garbage.
	objs []*objectWriter
	open int // objs in use
}

// push enters a member or element of the value at path; pop(depth) leaves
// it. With plain set there is no path to keep.
func (mw *maskWriter) push(token string) {
	if !mw.plain {
		mw.path = append(mw.path, token)
	}
}

func (mw *maskWriter) pop(depth int) {
	if !mw.plain {
		mw.path = mw.path[:depth]
	}
}

// reset readies mw for another record, keeping its slices' storage.
func (mw *maskWriter) reset(pointers []maskPointer) {
	clear(mw.path)
	clear(mw.masked)
	*mw = maskWriter{pointers: pointers, path: mw.path[:0], masked: mw.masked[:0], objs: mw.objs}
}

// appendObject appends an Object's members, with the rules that apply at
// mw.path (active), through a writer from mw.objs.
func (mw *maskWriter) appendObject(dst []byte, v Object, active uint64) ([]byte, error) {
	if mw.open == len(mw.objs) {
		mw.objs = append(mw.objs, new(objectWriter))
	}
	o := mw.objs[mw.open]
	mw.open++
	depth := len(mw.path)
	*o = objectWriter{mw: mw, dst: append(dst, '{'), active: active}
	v.LogMembers(o)
	mw.open--
	mw.path = mw.path[:depth]
	dst, err := o.dst, o.err
	*o = objectWriter{}
	if err != nil {
		return nil, err
	}
	return append(dst, '}'), nil
}

// appendPlain appends v as appendDirect does (no rule applies to it),
// streaming an Object through mw's writers instead of new ones.
func (mw *maskWriter) appendPlain(dst []byte, v any) ([]byte, error) {
	o, ok := v.(Object)
	if !ok {
		return appendDirect(dst, v)
	}
	plain := mw.plain
	mw.plain = true
	dst, err := mw.appendObject(dst, o, 0)
	mw.plain = plain
	return dst, err
}

// appendValue appends v, found at mw.path (as a member of an object when
// inObject), or MaskValue if a rule masks it.
func (mw *maskWriter) appendValue(dst []byte, v any, active uint64, inObject bool) ([]byte, error) {
	depth := len(mw.path)
	if active != 0 {
		for i := range mw.pointers {
			if active&(1<<i) != 0 && len(mw.pointers[i].tokens) == depth {
				// A configured pointer: no other pointer lies below it.
				if _, err := generic(v); err != nil {
					return nil, err
				}
				mw.masked = append(mw.masked, mw.pointers[i].raw)
				return appendString(dst, MaskValue), nil
			}
		}
	}
	if !mw.plain && inObject && depth >= 2 && redact.IsSecretKey(mw.path[depth-1]) {
		return mw.maskRule(dst, v, active)
	}
	switch t := v.(type) {
	case nil:
		return append(dst, "null"...), nil
	case bool:
		return strconv.AppendBool(dst, t), nil
	case string:
		if !mw.plain && redact.IsSecretString(t) {
			mw.record()
			return appendString(dst, MaskValue), nil
		}
		return appendString(dst, t), nil
	case json.Number:
		g, err := generic(t)
		if err != nil {
			return nil, err
		}
		return append(dst, g.(json.Number)...), nil
	case []string:
		if t == nil {
			return append(dst, "null"...), nil
		}
		if active == 0 && (mw.plain || !slices.ContainsFunc(t, redact.IsSecretString)) {
			return appendStringArray(dst, t), nil
		}
		return appendElems(mw, dst, t, active)
	case []any:
		if t == nil {
			return append(dst, "null"...), nil
		}
		return appendElems(mw, dst, t, active)
	case *Canonical:
		if mw.plain {
			return append(dst, t.Bytes()...), nil
		}
		// Rules may apply inside: walk it decoded (generic, below).
	case Object:
		return mw.appendObject(dst, t, active)
	case int64:
		return strconv.AppendInt(dst, t, 10), nil
	case int:
		return strconv.AppendInt(dst, int64(t), 10), nil
	case map[string]any:
		if t == nil {
			return append(dst, "null"...), nil
		}
		var kbuf [16]string
		keys, ok := sortedKeys(t, kbuf[:0])
		if !ok {
			break // generic repairs the keys as encoding/json does
		}
		return appendKeyed(dst, keys, func(dst []byte, k string) ([]byte, error) {
			mw.push(k)
			dst, err := mw.appendValue(dst, t[k], mw.narrowKey(active, depth, k), true)
			mw.path = mw.path[:depth]
			return dst, err
		})
	}
	g, err := generic(v)
	if err != nil {
		return nil, err
	}
	switch g.(type) {
	case nil, bool, string, json.Number, []any, map[string]any:
	default:
		return nil, fmt.Errorf("canonical: unsupported type %T", g)
	}
	if m, ok := g.(map[string]any); ok {
		if _, ok := sortedKeys(m, nil); !ok {
			return nil, fmt.Errorf("canonical: invalid UTF-8 key after repair")
		}
	}
	return mw.appendValue(dst, g, active, inObject)
}

// appendElems appends an array whose elements rules may mask.
func appendElems[E any](mw *maskWriter, dst []byte, elems []E, active uint64) ([]byte, error) {
	dst = append(dst, '[')
	for i, e := range elems {
		if i > 0 {
			dst = append(dst, ',')
		}
		var err error
		if dst, err = mw.appendElem(dst, e, i, len(elems), active); err != nil {
			return nil, err
		}
	}
	return append(dst, ']'), nil
}

// appendElem appends element i of an array of n at mw.path.
func (mw *maskWriter) appendElem(dst []byte, v any, i, n int, active uint64) ([]byte, error) {
	depth := len(mw.path)
	if !mw.plain {
		mw.push(strconv.Itoa(i))
	}
	dst, err := mw.appendValue(dst, v, mw.narrowIndex(active, depth, i, n), false)
	mw.path = mw.path[:depth]
	return dst, err
}

// narrowKey keeps the active pointers whose token at depth is key.
func (mw *maskWriter) narrowKey(active uint64, depth int, key string) uint64 {
	var next uint64
	for i := 0; active != 0 && i < len(mw.pointers); i++ {
		if p := mw.pointers[i]; active&(1<<i) != 0 && len(p.tokens) > depth && p.tokens[depth] == key {
			next |= 1 << i
		}
	}
	return next
}

// narrowIndex keeps the active pointers whose token at depth addresses
// element i of an array of n, as maskAt reads it.
func (mw *maskWriter) narrowIndex(active uint64, depth, i, n int) uint64 {
	var next uint64
	for j := 0; active != 0 && j < len(mw.pointers); j++ {
		if p := mw.pointers[j]; active&(1<<j) != 0 && len(p.tokens) > depth {
			if idx, ok := arrayIndex(p.tokens[depth], n); ok && idx == i {
				next |= 1 << j
			}
		}
	}
	return next
}

// appendStringArray appends a JSON array of strings.
func appendStringArray(dst []byte, ss []string) []byte {
	dst = append(dst, '[')
	for i, s := range ss {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendString(dst, s)
	}
	return append(dst, ']')
}

// maskRule masks v, a secret under context or a credential header. As in
// Masker.apply, which runs the pointers first, a pointer below v that
// resolves is recorded too, and a value that is already MaskValue is not
// recorded again.
func (mw *maskWriter) maskRule(dst []byte, v any, active uint64) ([]byte, error) {
	g, err := generic(v)
	if err != nil {
		return nil, err
	}
	depth := len(mw.path)
	for i, p := range mw.pointers {
		if active&(1<<i) != 0 && len(p.tokens) > depth && exists(g, p.tokens[depth:]) {
			mw.masked = append(mw.masked, p.raw)
			g = nil // the pointer's masking made g differ from MaskValue
		}
	}
	if s, ok := g.(string); !ok || s != MaskValue {
		mw.record()
	}
	return appendString(dst, MaskValue), nil
}

func (mw *maskWriter) record() {
	mw.masked = append(mw.masked, pointerTo(mw.path))
}

// Object is a JSON object that writes its own members, so that a caller can
// log a typed value (the server's decision input) without building a map for
// each record. It is recorded as the members it writes, whatever
// encoding/json would make of the Go value. LogMembers calls w once per
// member, in strictly ascending key order (byte-wise); a record whose Object
// breaks that order is refused.
type Object interface {
	LogMembers(w MemberWriter)
}

// MemberWriter receives an Object's members. String and Strings spare the
// caller boxing a string or a slice into an interface.
type MemberWriter interface {
	String(key, v string)
	Strings(key string, v []string)
	Value(key string, v any)
}

// objectMap builds the generic form of an Object (for generic).
type objectMap struct {
	m    map[string]any
	last string
	err  error
}

func (o *objectMap) add(key string, v any, err error) {
	if o.err != nil {
		return
	}
	if err == nil {
		err = checkMemberKey(len(o.m) == 0, o.last, key)
	}
	if err != nil {
		o.err = err
		return
	}
	o.m[key], o.last = v, key
}

// checkMemberKey checks an Object's next member key against the one before
// (none when first): the same check on both encoding paths.
func checkMemberKey(first bool, last, key string) error {
	if !first && key <= last {
		return fmt.Errorf("object member %q after %q: keys must be strictly ascending", key, last)
	}
	if !utf8.ValidString(key) {
		return fmt.Errorf("object member %q: key is not valid UTF-8", key)
	}
	return nil
}

func (o *objectMap) String(key, v string) { o.add(key, v, nil) }
func (o *objectMap) Strings(key string, v []string) {
	g, err := generic(v)
	o.add(key, g, err)
}
func (o *objectMap) Value(key string, v any) {
	g, err := generic(v)
	o.add(key, g, err)
}

func genericObject(v Object) (any, error) {
	o := objectMap{m: map[string]any{}}
	v.LogMembers(&o)
	if o.err != nil {
		return nil, o.err
	}
	return o.m, nil
}

// objectWriter streams an Object's members through a maskWriter.
type objectWriter struct {
	mw     *maskWriter
	dst    []byte
	active uint64
	n      int
	last   string
	err    error
}

// member starts the member key and reports whether to write its value.
func (o *objectWriter) member(key string) bool {
	if o.err != nil {
		return false
	}
	if o.err = checkMemberKey(o.n == 0, o.last, key); o.err != nil {
		return false
	}
	if o.n > 0 {
		o.dst = append(o.dst, ',')
	}
	o.n++
	o.last = key
	o.dst = appendString(o.dst, key)
	o.dst = append(o.dst, ':')
	o.mw.push(key)
	return true
}

func (o *objectWriter) value(key string, v any) {
	if o.mw.plain { // no rules, no path
		o.dst, o.err = o.mw.appendValue(o.dst, v, 0, true)
		return
	}
	depth := len(o.mw.path) - 1
	o.dst, o.err = o.mw.appendValue(o.dst, v, o.mw.narrowKey(o.active, depth, key), true)
	o.mw.path = o.mw.path[:depth]
}

// String writes a string member without boxing it, unless a rule may mask
// it (a pointer reaching it, or a token-like value).
func (o *objectWriter) String(key, v string) {
	if !o.member(key) {
		return
	}
	depth := len(o.mw.path) - 1
	if !o.mw.plain && (o.mw.narrowKey(o.active, depth, key) != 0 || redact.IsSecretString(v) || redact.IsSecretKey(key)) {
		o.value(key, v)
		return
	}
	o.dst = appendString(o.dst, v)
	o.mw.pop(depth)
}

// Strings writes a string array member without boxing it, unless a rule
// may mask one of its elements.
func (o *objectWriter) Strings(key string, v []string) {
	if !o.member(key) {
		return
	}
	depth := len(o.mw.path) - 1
	if v != nil && (o.mw.plain || o.mw.narrowKey(o.active, depth, key) == 0 && !slices.ContainsFunc(v, redact.IsSecretString) && !redact.IsSecretKey(key)) {
		o.dst = appendStringArray(o.dst, v)
		o.mw.pop(depth)
		return
	}
	o.value(key, v)
}

func (o *objectWriter) Value(key string, v any) {
	if o.member(key) {
		o.value(key, v)
	}
}
