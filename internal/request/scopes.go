package request

import (
	"encoding/json"
	"fmt"
	"strings"
)

// parseScopes reads a scope field given as a JSON array of strings or as
// one space-separated string (RFC 6749 section 3.3). An absent or null
// field gives nil.
func parseScopes(field string, raw json.RawMessage) ([]string, *Error) {
	var v any
	if len(raw) == 0 {
		return nil, nil
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, invalid(field, "%v", err)
	}
	switch v := v.(type) {
	case nil:
		return nil, nil
	case string:
		s, err := ParseScopeString(v)
		if err != nil {
			return nil, invalid(field, "%v", err)
		}
		return s, nil
	case []any:
		if len(v) > MaxScopes {
			return nil, invalid(field, "more than %d scopes", MaxScopes)
		}
		out := make([]string, 0, len(v))
		for i, x := range v {
			s, ok := x.(string)
			if !ok {
				return nil, invalid(fmt.Sprintf("%s[%d]", field, i), "must be a string")
			}
			if strings.Contains(s, " ") {
				return nil, invalid(fmt.Sprintf("%s[%d]", field, i), "%q holds a space: send a list of scopes or one space-separated string", truncate(s))
			}
			if err := checkScopeToken(s); err != nil {
				return nil, invalid(fmt.Sprintf("%s[%d]", field, i), "%s", err.msg)
			}
			out = append(out, s)
		}
		return dedupe(out), nil
	default:
		return nil, invalid(field, "must be an array of strings or one space-separated string")
	}
}

// scopeError says what is wrong with a scope string.
type scopeError struct{ msg string }

func (e *scopeError) Error() string { return e.msg }

// ParseScopeString splits an RFC 6749 scope string: scope-tokens separated
// by single spaces. "" is no scopes. Doubled, leading or trailing spaces are
// refused rather than guessed at.
func ParseScopeString(s string) ([]string, error) {
	if s == "" {
		return []string{}, nil
	}
	parts := strings.Split(s, " ")
	if len(parts) > MaxScopes {
		return nil, &scopeError{msg: fmt.Sprintf("more than %d scopes", MaxScopes)}
	}
	for i, p := range parts {
		if p == "" {
			return nil, &scopeError{msg: fmt.Sprintf("malformed scope string: empty scope at position %d (scopes are separated by single spaces)", i)}
		}
		if err := checkScopeToken(p); err != nil {
			return nil, &scopeError{msg: fmt.Sprintf("scope %d: %s", i, err.msg)}
		}
	}
	return dedupe(parts), nil
}

// checkScopeToken applies RFC 6749's scope-token grammar:
// 1*( %x21 / %x23-5B / %x5D-7E ), bounded in length.
func checkScopeToken(s string) *scopeError {
	if s == "" {
		return &scopeError{msg: "empty scope"}
	}
	if len(s) > MaxScopeLen {
		return &scopeError{msg: fmt.Sprintf("scope longer than %d bytes", MaxScopeLen)}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x21 || c == '"' || c == '\\' || c > 0x7e {
			return &scopeError{msg: fmt.Sprintf("scope %q has a character not allowed in a scope (byte 0x%02x)", truncate(s), c)}
		}
	}
	return nil
}

func truncate(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

func dedupe(in []string) []string {
	seen := make(map[string]bool, len(in))
	out := in[:0]
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}
