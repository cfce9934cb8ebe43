package main

import (
	"fmt"
	"io"
	"unicode/utf8"
)

// termSafe wraps a terminal-bound writer so that what a caller put in the
// decision log (a subject, a client id) cannot drive the auditor's terminal:
// C0 controls but tab and newline, DEL, C1 controls (U+0080-U+009F, which
// many terminals obey as escape sequences) and the bidirectional formatting
// characters (which reorder what is shown, e.g. U+202E) are written as
// \u{XXXX}. Invalid UTF-8 is written as \x{XX}.
func termSafe(w io.Writer) io.Writer { return &safeWriter{w: w} }

type safeWriter struct {
	w    io.Writer
	part []byte // an incomplete rune left by the last Write
	buf  []byte
}

func (s *safeWriter) Write(p []byte) (int, error) {
	in := append(s.part, p...)
	s.part = s.part[:0]
	out := s.buf[:0]
	for len(in) > 0 {
		r, size := utf8.DecodeRune(in)
		if r == utf8.RuneError && size <= 1 {
			if !utf8.FullRune(in) {
				s.part = append(s.part, in...)
				break
			}
			out = fmt.Appendf(out, `\x{%02X}`, in[0])
			in = in[1:]
			continue
		}
		if unsafeRune(r) {
			out = fmt.Appendf(out, `\u{%04X}`, r)
		} else {
			out = append(out, in[:size]...)
		}
		in = in[size:]
	}
	s.buf = out
	if _, err := s.w.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}

func unsafeRune(r rune) bool {
	switch {
	case r == '\t' || r == '\n':
		return false
	case r < 0x20 || r == 0x7f || (r >= 0x80 && r <= 0x9f):
		return true
	case r == 0x061c || r == 0x200e || r == 0x200f || (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069):
		return true
	}
	return false
}
