package decisionlog

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"
)

// Canonical form and hash chain.
//
// A record's hash is the lowercase hex SHA-256 of the canonical JSON of the
// record with its top-level "hash" member removed ("prev_hash" included).
//
// The canonical JSON of a record is computed from the record as decoded by
// encoding/json with UseNumber into map[string]any / []any / string /
// json.Number / bool / nil (so a duplicated key keeps its last value and
// invalid UTF-8 has become U+FFFD), and encoded as:
//   - objects: members sorted by key, comparing keys as UTF-8 bytes;
//   - arrays: elements in order;
//   - no whitespace between tokens;
//   - strings: UTF-8 as is, except '"' and '\' (escaped with a backslash),
//     U+0008, U+0009, U+000A, U+000C, U+000D (as \b \t \n \f \r) and the
//     other code points below U+0020 (as \u00xx, lowercase hex); nothing else
//     is escaped;
//   - numbers: exactly the text of the number in the decoded line;
//   - true, false, null.
//
// The encoder is written out here, rather than being encoding/json's Marshal,
// so that a future change in the standard library's escaping cannot make old
// logs fail verification. The writer writes this canonical form to disk with
// the "hash" member appended last, so a line is its own hash input plus the
// hash; Verify re-derives the canonical form from whatever is on disk.

// record is what verifyLine extracts from a line.
type record struct {
	prev, hash string
}

// Kind classifies what is wrong with a record.
type Kind string

const (
	// KindMalformed: the line is not a JSON object with hex prev_hash and hash.
	KindMalformed Kind = "malformed"
	// KindHashMismatch: the record's content does not hash to its hash field
	// (the line was edited).
	KindHashMismatch Kind = "hash_mismatch"
	// KindBrokenLink: prev_hash is not the hash of the record before it (a
	// record was deleted, inserted or reordered, or a file is missing).
	KindBrokenLink Kind = "broken_link"
	// KindTruncated: the last line has no newline (a write was cut short).
	KindTruncated Kind = "truncated"
)

// lineError is a problem with one line, before the file:line is known.
type lineError struct {
	kind   Kind
	detail string
}

func (e *lineError) Error() string { return string(e.kind) + ": " + e.detail }

// CheckLine verifies one record line (without its newline) as Verify does,
// and returns its prev_hash and hash; linking it to the record before is
// the caller's business. A bad line's error is a *ChainError whose File
// and Line the caller fills in. It lets an index verify a log
// incrementally, each record once, as it is appended.
func CheckLine(line []byte) (prev, hash string, err error) {
	rec, err := verifyLine(line)
	if err != nil {
		ce := &ChainError{Kind: KindMalformed, Detail: err.Error()}
		if le, ok := errors.AsType[*lineError](err); ok {
			ce.Kind, ce.Detail = le.kind, le.detail
		}
		return "", "", ce
	}
	return rec.prev, rec.hash, nil
}

// verifyLine parses a line (without its newline), recomputes its hash and
// returns its prev_hash and hash. The link to the previous record is the
// caller's business.
func verifyLine(line []byte) (record, error) {
	var v any
	if err := decodeStrict(line, &v); err != nil {
		return record{}, &lineError{KindMalformed, "not JSON: " + err.Error()}
	}
	doc, ok := v.(map[string]any)
	if !ok {
		return record{}, &lineError{KindMalformed, "not a JSON object"}
	}
	hash, ok := doc["hash"].(string)
	if !ok || !IsHexHash(hash) {
		return record{}, &lineError{KindMalformed, `missing or invalid "hash" (want 64 lowercase hex digits)`}
	}
	prev, ok := doc["prev_hash"].(string)
	if !ok || !IsHexHash(prev) {
		return record{}, &lineError{KindMalformed, `missing or invalid "prev_hash" (want 64 lowercase hex digits)`}
	}
	delete(doc, "hash")
	canon, err := appendCanonical(nil, doc)
	if err != nil {
		return record{}, &lineError{KindMalformed, err.Error()}
	}
	sum := sha256.Sum256(canon)
	if got := hex.EncodeToString(sum[:]); got != hash {
		return record{}, &lineError{KindHashMismatch, fmt.Sprintf("content hashes to %s, record says %s (record edited)", short(got), short(hash))}
	}
	return record{prev: prev, hash: hash}, nil
}

func IsHexHash(s string) bool {
	if len(s) != 2*sha256.Size {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12] + "…"
	}
	return h
}

// decodeStrict decodes exactly one JSON value from b, numbers as json.Number.
func decodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("trailing data after the JSON value")
	}
	return nil
}

// appendCanonical appends the canonical JSON of a decoded value to dst.
func appendCanonical(dst []byte, v any) ([]byte, error) {
	switch v := v.(type) {
	case nil:
		return append(dst, "null"...), nil
	case *direct:
		return appendDirect(dst, v.v)
	case *string:
		return appendString(dst, *v), nil
	case *time.Time:
		dst = append(dst, '"')
		dst = v.AppendFormat(dst, time.RFC3339Nano)
		return append(dst, '"'), nil
	case bool:
		return strconv.AppendBool(dst, v), nil
	case json.Number:
		if v == "" {
			return nil, errors.New("canonical: empty number")
		}
		return append(dst, v...), nil
	case string:
		return appendString(dst, v), nil
	case []any:
		dst = append(dst, '[')
		for i, e := range v {
			if i > 0 {
				dst = append(dst, ',')
			}
			var err error
			if dst, err = appendCanonical(dst, e); err != nil {
				return nil, err
			}
		}
		return append(dst, ']'), nil
	case map[string]any:
		dst = append(dst, '{')
		dst, err := appendMembers(dst, v, func(string) bool { return true })
		if err != nil {
			return nil, err
		}
		return append(dst, '}'), nil
	default:
		return nil, fmt.Errorf("canonical: unsupported type %T", v)
	}
}

// appendMembers appends the members of m whose key passes keep, sorted and
// comma separated, without the surrounding braces.
func appendMembers(dst []byte, m map[string]any, keep func(string) bool) ([]byte, error) {
	keys := make([]string, 0, len(m))
	for k := range m {
		if keep(k) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return appendMembersBy(dst, keys, func(dst []byte, k string) ([]byte, error) { return appendCanonical(dst, m[k]) })
}

// appendMembersBy appends "k":v for each of keys in order, comma separated,
// without the surrounding braces; value writes the value of key k.
func appendMembersBy(dst []byte, keys []string, value func(dst []byte, k string) ([]byte, error)) ([]byte, error) {
	for i, k := range keys {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendString(dst, k)
		dst = append(dst, ':')
		var err error
		if dst, err = value(dst, k); err != nil {
			return nil, err
		}
	}
	return dst, nil
}

// appendKeyed is appendMembersBy inside braces: a JSON object.
func appendKeyed(dst []byte, keys []string, value func(dst []byte, k string) ([]byte, error)) ([]byte, error) {
	dst, err := appendMembersBy(append(dst, '{'), keys, value)
	if err != nil {
		return nil, err
	}
	return append(dst, '}'), nil
}

// plainASCII marks the bytes appendString copies as they are.
var plainASCII = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// plainWord reports whether s[i:i+8] is all plainASCII bytes: none below
// 0x20, none at or above 0x80, no '"' and no '\\' (bit tricks on a word; see
// "Determine if a word has a byte less than n", Bit Twiddling Hacks).
func plainWord(s string, i int) bool {
	const (
		ones  = 0x0101010101010101
		highs = 0x8080808080808080
	)
	x := uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
		uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
	control := x - ones*0x20            // borrows into a high bit where a byte < 0x20
	quote := (x ^ ones*'"') - ones      // high bit where a byte == '"'
	backslash := (x ^ ones*'\\') - ones // high bit where a byte == '\\'
	return (control|quote|backslash|x)&highs == 0
}

func appendString(dst []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0 // s[start:i] is copied as is
	for i := 0; i < len(s); {
		// Skip eight plain bytes at a time: most of a record is plain ASCII.
		for i+8 <= len(s) && plainWord(s, i) {
			i += 8
		}
		if i >= len(s) {
			break
		}
		c := s[i]
		if plainASCII[c] {
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r != utf8.RuneError || size != 1 {
				i += size
				continue
			}
			dst = append(dst, s[start:i]...)
			dst = append(dst, "\uFFFD"...)
			i++
			start = i
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\b':
			dst = append(dst, '\\', 'b')
		case '\t':
			dst = append(dst, '\\', 't')
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\f':
			dst = append(dst, '\\', 'f')
		case '\r':
			dst = append(dst, '\\', 'r')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		i++
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// splitCanonical encodes a record (without prev_hash and hash) as the
// canonical members sorting before and after "prev_hash", so the writer's
// goroutine only has to splice the chain in: the expensive encoding happens
// in the callers' goroutines.
func splitCanonical(doc map[string]any) (head, tail []byte, err error) {
	keys := make([]string, 0, len(doc))
	for k := range doc {
		if k != "prev_hash" && k != "hash" {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	buf := make([]byte, 0, 2048)
	n := -1
	for i, k := range keys {
		if n < 0 && k > "prev_hash" {
			n = len(buf) // head ends here; tail starts after the comma
		}
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = appendString(buf, k)
		buf = append(buf, ':')
		if buf, err = appendCanonical(buf, doc[k]); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", k, err)
		}
	}
	if n < 0 {
		return buf, nil, nil
	}
	head = buf[:n:n]
	tail = buf[n:]
	if len(head) > 0 {
		tail = tail[1:] // the comma
	}
	return head, tail, nil
}

const (
	prevMember = `"prev_hash":"`
	hashMember = `,"hash":"`
)

// sealedLen is the length of the line appendSealed produces, newline included.
func sealedLen(head, tail []byte) int {
	n := len("{") + len(prevMember) + 2*sha256.Size + len(`"`) + len(hashMember) + 2*sha256.Size + len(`"}`) + len("\n")
	if len(head) > 0 {
		n += len(head) + 1
	}
	if len(tail) > 0 {
		n += len(tail) + 1
	}
	return n
}

// appendSealed appends the line for a record (canonical members head and
// tail) chained after prev, and returns the record's hash.
func appendSealed(dst, head, tail []byte, prev string) ([]byte, string) {
	start := len(dst)
	dst = append(dst, '{')
	if len(head) > 0 {
		dst = append(dst, head...)
		dst = append(dst, ',')
	}
	dst = append(dst, prevMember...)
	dst = append(dst, prev...)
	dst = append(dst, '"')
	if len(tail) > 0 {
		dst = append(dst, ',')
		dst = append(dst, tail...)
	}
	dst = append(dst, '}')
	sum := sha256.Sum256(dst[start:])
	dst = dst[:len(dst)-1]
	dst = append(dst, hashMember...)
	hashStart := len(dst)
	dst = hex.AppendEncode(dst, sum[:])
	hash := string(dst[hashStart:])
	dst = append(dst, '"', '}', '\n')
	return dst, hash
}
