// Package redact recognises secrets in what callers send: keys that name a
// credential, credential headers, bearer tokens and JWTs. The decision log
// masks what it finds before a record reaches any encoder, and decisions
// strip JWTs from what they echo, so a secret never reaches disk.
package redact

import (
	"encoding/base64"
	"encoding/json"
	"strings"
)

// Mask replaces every secret.
const Mask = "***"

// secretWords are the key fragments that name a secret, lower case. They
// cover credential headers too (authorization, proxy-authorization, cookie,
// set-cookie, x-api-key), wherever a caller nests them.
var secretWords = [...]string{
	"secret", "password", "passwd", "token", "api_key", "apikey", "api-key",
	"private_key", "privatekey", "private-key", "authorization", "credential",
	"cookie", "session",
}

// IsSecretKey reports whether an object key names a secret (it contains one
// of the secret words, in any case).
func IsSecretKey(k string) bool {
	k = strings.ToLower(k)
	for _, s := range secretWords {
		if strings.Contains(k, s) {
			return true
		}
	}
	return false
}

// IsSecretString reports whether a string value is, or holds, a credential:
// a bearer token ("Bearer ...", any case), or a JWT anywhere in it.
func IsSecretString(s string) bool {
	t := strings.TrimSpace(s)
	if len(t) > 7 && strings.EqualFold(t[:6], "bearer") && (t[6] == ' ' || t[6] == '\t') {
		return true
	}
	return ContainsJWT(s)
}

// ContainsJWT reports whether s holds a JWT: three base64url segments joined
// by dots (the last may be empty, as in an unsecured JWT), the first of
// which decodes to a JSON object (the JOSE header).
func ContainsJWT(s string) bool {
	_, _, ok := nextJWT(s, 0)
	return ok
}

// MaskJWTs returns s with every JWT in it replaced by Mask, and whether it
// replaced any.
func MaskJWTs(s string) (string, bool) {
	start, end, ok := nextJWT(s, 0)
	if !ok {
		return s, false
	}
	var b strings.Builder
	last := 0
	for ok {
		b.WriteString(s[last:start])
		b.WriteString(Mask)
		last = end
		start, end, ok = nextJWT(s, end)
	}
	b.WriteString(s[last:])
	return b.String(), true
}

// nextJWT finds the first JWT in s at or after from: s[start:end].
func nextJWT(s string, from int) (start, end int, ok bool) {
	for {
		// A JOSE header is a JSON object, so its base64url starts "eyJ"
		// ('{"'): only there can a JWT begin.
		i := strings.Index(s[from:], "eyJ")
		if i < 0 {
			return 0, 0, false
		}
		// Even glued to a word ("xeyJ..."), the token is the secret.
		start = from + i
		if end, ok = jwtAt(s, start); ok {
			return start, end, true
		}
		from = start + 1
	}
}

// jwtAt reports whether a JWT starts at s[start], and where it ends.
func jwtAt(s string, start int) (end int, ok bool) {
	var seg [3]int // end of each segment
	i, n := start, 0
	for n < 3 {
		j := i
		for j < len(s) && isB64(s[j]) {
			j++
		}
		seg[n] = j
		n++
		if n < 3 {
			if j >= len(s) || s[j] != '.' {
				return 0, false
			}
			i = j + 1
		}
	}
	header, payloadLen := s[start:seg[0]], seg[1]-(seg[0]+1)
	if len(header) < 4 || payloadLen == 0 {
		return 0, false
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(header, "="))
	if err != nil {
		return 0, false
	}
	var h map[string]any
	if json.Unmarshal(raw, &h) != nil {
		return 0, false
	}
	return seg[2], true
}

func isB64(c byte) bool {
	// '=' is padding, which some encoders leave on a segment.
	return c == '-' || c == '_' || c == '=' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}
