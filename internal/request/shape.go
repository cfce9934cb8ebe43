package request

import (
	"bytes"
	"unicode/utf8"
)

// scanShape is the fast path of checkShapeKnown: one pass over the raw bytes
// with no allocation per token. It reports the same first problem as
// checkShapeTokens (nesting too deep, a key given twice, an unknown field of
// a closed object) in document order. decided is false when it cannot tell
// without decoding keys: a key holding a backslash or invalid UTF-8, or
// bytes that are not one
// well-formed JSON value (the real decoder then reports the syntax error).
// FuzzShapeAgrees checks it against checkShapeTokens.
func scanShape(raw []byte, known map[string]map[string]bool) (e *Error, decided bool) {
	s := shapeScanner{raw: raw, known: known}
	s.ws()
	if !s.value("", 0) {
		return s.problem, s.problem != nil
	}
	s.ws()
	if s.i != len(s.raw) {
		return nil, false
	}
	return nil, true
}

type shapeScanner struct {
	raw     []byte
	i       int
	known   map[string]map[string]bool
	problem *Error
}

func (s *shapeScanner) ws() {
	for s.i < len(s.raw) {
		switch s.raw[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// value scans one value at path; open is how many containers enclose it. It
// returns false to stop: with s.problem set for a shape problem, unset when
// undecided.
func (s *shapeScanner) value(path string, open int) bool {
	if s.i >= len(s.raw) {
		return false
	}
	switch c := s.raw[s.i]; c {
	case '{', '[':
		if open >= maxObjectDepth {
			s.problem = invalid(path, "nested deeper than %d levels", maxObjectDepth)
			return false
		}
		s.i++
		if c == '{' {
			return s.object(path, open+1)
		}
		return s.array(path, open+1)
	case '"':
		_, _, ok := s.str()
		return ok
	default:
		return s.literal()
	}
}

func (s *shapeScanner) object(path string, open int) bool {
	closed, isClosed := s.known[path]
	isClosed = isClosed && open <= 2
	var seen [][]byte
	s.ws()
	if s.i < len(s.raw) && s.raw[s.i] == '}' {
		s.i++
		return true
	}
	for {
		s.ws()
		key, escaped, ok := s.str()
		if !ok || escaped || !utf8.Valid(key) {
			return false // the reference unescapes, and replaces bad UTF-8
		}
		for _, k := range seen {
			if bytes.Equal(k, key) {
				s.problem = invalid(joinPath(path, string(key)), "key given twice")
				return false
			}
		}
		seen = append(seen, key)
		if isClosed && !closed[string(key)] {
			s.problem = invalid(joinPath(path, string(key)), "unknown field")
			return false
		}
		s.ws()
		if s.i >= len(s.raw) || s.raw[s.i] != ':' {
			return false
		}
		s.i++
		s.ws()
		if !s.value(joinPath(path, string(key)), open) {
			return false
		}
		s.ws()
		if s.i >= len(s.raw) {
			return false
		}
		switch s.raw[s.i] {
		case ',':
			s.i++
		case '}':
			s.i++
			return true
		default:
			return false
		}
	}
}

func (s *shapeScanner) array(path string, open int) bool {
	s.ws()
	if s.i < len(s.raw) && s.raw[s.i] == ']' {
		s.i++
		return true
	}
	for {
		s.ws()
		if !s.value(path+"[]", open) {
			return false
		}
		s.ws()
		if s.i >= len(s.raw) {
			return false
		}
		switch s.raw[s.i] {
		case ',':
			s.i++
		case ']':
			s.i++
			return true
		default:
			return false
		}
	}
}

// str scans a string and returns its raw content; escaped says it held a
// backslash (its content then differs from the raw bytes).
func (s *shapeScanner) str() (content []byte, escaped, ok bool) {
	if s.i >= len(s.raw) || s.raw[s.i] != '"' {
		return nil, false, false
	}
	start := s.i + 1
	for i := start; i < len(s.raw); i++ {
		switch c := s.raw[i]; {
		case c == '"':
			s.i = i + 1
			return s.raw[start:i], escaped, true
		case c == '\\':
			escaped = true
			i++ // the escaped byte cannot end the string
		case c < 0x20:
			return nil, false, false // not valid JSON: let the decoder say so
		}
	}
	return nil, false, false
}

// literal skips a number, true, false or null. It does not validate it: the
// real decoder rejects a malformed one, and it holds no keys.
func (s *shapeScanner) literal() bool {
	start := s.i
	for s.i < len(s.raw) {
		switch c := s.raw[s.i]; {
		case c >= '0' && c <= '9', c >= 'a' && c <= 'z', c == '-', c == '+', c == '.', c == 'E':
			s.i++
		default:
			return s.i > start
		}
	}
	return s.i > start
}
