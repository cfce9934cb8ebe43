package decisionlog

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/scopegate/scopegate/internal/redact"
)

// Masker replaces sensitive values in a record by MaskValue before the record
// is hashed or written. Whatever the configuration, it masks (the rules are
// internal/redact's):
//   - anywhere in input, the value of every key that names a secret
//     (secret, password, token, api_key, private_key, session, cookie,
//     authorization, ... in any case), which covers credential headers
//     (Cookie, Set-Cookie, Authorization, Proxy-Authorization, X-Api-Key)
//     wherever a caller nests them;
//   - anywhere in input, every string that is a bearer token ("Bearer ...")
//     or holds a JWT;
//   - the top-level subject and client_id when they are or hold one
//     (Writer.prepare, before either encoder).
//
// It also masks the RFC 6901 pointers it was built with, relative to the
// record root (e.g. "/input/resource/owner"); pointers that do not resolve in
// a record are ignored. The zero Masker applies the built-in rules only.
type Masker struct {
	pointers []maskPointer
}

type maskPointer struct {
	raw    string
	tokens []string
}

// NewMasker returns a Masker that also masks the given JSON pointers.
func NewMasker(pointers ...string) (*Masker, error) {
	m := &Masker{}
	for _, p := range pointers {
		tokens, err := parsePointer(p)
		if err != nil {
			return nil, fmt.Errorf("decisionlog: mask pointer %q: %w", p, err)
		}
		switch tokens[0] {
		case "hash", "prev_hash", "masked":
			return nil, fmt.Errorf("decisionlog: mask pointer %q: %s is written by the log itself", p, tokens[0])
		}
		m.pointers = append(m.pointers, maskPointer{raw: p, tokens: tokens})
	}
	return m, nil
}

// with returns a Masker that also masks pointers (m itself when they add
// nothing new).
func (m *Masker) with(pointers []string) (*Masker, error) {
	all := m.Pointers()
	for _, p := range pointers {
		if !slices.Contains(all, p) {
			all = append(all, p)
		}
	}
	if len(all) == len(m.pointers) {
		return m, nil
	}
	return NewMasker(all...)
}

// walks reports whether masking looks inside the record's top-level member
// key: input always (the built-in rules), and any member a pointer names.
// eventDoc builds those members as generic values and encodes the others
// directly.
func (m *Masker) walks(key string) bool {
	if key == "input" || key == "masked" {
		return true
	}
	for _, p := range m.pointers {
		if p.tokens[0] == key {
			return true
		}
	}
	return false
}

// Pointers returns the configured pointers.
func (m *Masker) Pointers() []string {
	out := make([]string, len(m.pointers))
	for i, p := range m.pointers {
		out[i] = p.raw
	}
	return out
}

func parsePointer(p string) ([]string, error) {
	if p == "" || p[0] != '/' {
		return nil, fmt.Errorf("must start with '/' (the whole record cannot be masked)")
	}
	parts := strings.Split(p[1:], "/")
	for i, t := range parts {
		// RFC 6901: "~1" is '/', "~0" is '~', any other '~' is an error.
		for j := 0; j < len(t); j++ {
			if t[j] == '~' && (j+1 == len(t) || (t[j+1] != '0' && t[j+1] != '1')) {
				return nil, fmt.Errorf("invalid escape in token %q", t)
			}
		}
		parts[i] = strings.ReplaceAll(strings.ReplaceAll(t, "~1", "/"), "~0", "~")
	}
	return parts, nil
}

func escapeToken(t string) string {
	if !strings.ContainsAny(t, "~/") {
		return t
	}
	return strings.ReplaceAll(strings.ReplaceAll(t, "~", "~0"), "/", "~1")
}

// apply masks doc in place and returns the masked pointers, sorted. doc must
// be a private copy (the writer decodes a fresh one from the caller's event),
// which is why the caller's input is never modified.
func (m *Masker) apply(doc map[string]any) []string {
	w := maskWalk{}
	for _, p := range m.pointers {
		if maskAt(doc, p.tokens) {
			w.masked = append(w.masked, p.raw)
		}
	}
	w.path = append(w.path, "input")
	if in, ok := doc["input"]; ok {
		w.secrets(in)
		doc["input"] = w.tokens(in)
	}
	if len(w.masked) == 0 {
		return nil
	}
	slices.Sort(w.masked)
	return slices.Compact(w.masked)
}

// maskAt replaces the value at tokens, reporting whether it existed.
func maskAt(doc map[string]any, tokens []string) bool {
	if len(tokens) == 0 {
		return false
	}
	parent, ok := lookup(doc, tokens[:len(tokens)-1])
	if !ok {
		return false
	}
	last := tokens[len(tokens)-1]
	switch c := parent.(type) {
	case map[string]any:
		if _, ok := c[last]; ok {
			c[last] = MaskValue
			return true
		}
	case []any:
		if idx, ok := arrayIndex(last, len(c)); ok {
			c[idx] = MaskValue
			return true
		}
	}
	return false
}

// lookup returns the value tokens name inside the generic value v.
func lookup(v any, tokens []string) (any, bool) {
	for _, t := range tokens {
		switch c := v.(type) {
		case map[string]any:
			e, ok := c[t]
			if !ok {
				return nil, false
			}
			v = e
		case []any:
			idx, ok := arrayIndex(t, len(c))
			if !ok {
				return nil, false
			}
			v = c[idx]
		default:
			return nil, false
		}
	}
	return v, true
}

// exists reports whether tokens name a value inside the generic value v.
func exists(v any, tokens []string) bool {
	_, ok := lookup(v, tokens)
	return ok
}

func arrayIndex(t string, n int) (int, bool) {
	if t == "" || (len(t) > 1 && t[0] == '0') {
		return 0, false
	}
	idx, err := strconv.Atoi(t)
	if err != nil || idx < 0 || idx >= n {
		return 0, false
	}
	return idx, true
}

type maskWalk struct {
	path   []string // unescaped tokens of the current position
	masked []string
}

func (w *maskWalk) record(more ...string) {
	w.masked = append(w.masked, pointerTo(w.path, more...))
}

// pointerTo is the RFC 6901 pointer to the value at the unescaped tokens
// path, then more.
func pointerTo(path []string, more ...string) string {
	var b strings.Builder
	for _, tokens := range [2][]string{path, more} {
		for _, t := range tokens {
			b.WriteByte('/')
			b.WriteString(escapeToken(t))
		}
	}
	return b.String()
}

// secrets masks the values of secret-named keys anywhere below v.
func (w *maskWalk) secrets(v any) {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			if redact.IsSecretKey(k) {
				if e != MaskValue {
					v[k] = MaskValue
					w.record(k)
				}
				continue
			}
			w.path = append(w.path, k)
			w.secrets(e)
			w.path = w.path[:len(w.path)-1]
		}
	case []any:
		for i, e := range v {
			w.path = append(w.path, strconv.Itoa(i))
			w.secrets(e)
			w.path = w.path[:len(w.path)-1]
		}
	}
}

// tokens returns v with every token-like string masked.
func (w *maskWalk) tokens(v any) any {
	switch v := v.(type) {
	case string:
		if redact.IsSecretString(v) {
			w.record()
			return MaskValue
		}
	case map[string]any:
		for k, e := range v {
			w.path = append(w.path, k)
			v[k] = w.tokens(e)
			w.path = w.path[:len(w.path)-1]
		}
	case []any:
		for i, e := range v {
			w.path = append(w.path, strconv.Itoa(i))
			v[i] = w.tokens(e)
			w.path = w.path[:len(w.path)-1]
		}
	}
	return v
}
