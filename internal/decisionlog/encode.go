package decisionlog

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"
	"unicode/utf8"
)

// eventDoc turns an event into the form that is masked and hashed: the value
// that decoding json.Marshal(ev) with UseNumber would give, built directly
// because the round trip costs more than all the rest of a record. Members
// for which walk returns true (those masking walks) are generic values, every
// map and slice new, so masking never touches the caller's values; the
// others are wrapped to be encoded straight from the caller's values when
// the record is (direct, see appendDirect). TestEventDocMatchesRoundTrip keeps it in step with Event's
// JSON tags.
func eventDoc(ev Event, walk func(key string) bool) (map[string]any, error) {
	ts := ev.Timestamp.UTC()
	if y := ts.Year(); y < 0 || y > 9999 {
		return nil, fmt.Errorf("timestamp %v: year outside [0,9999]", ts)
	}
	// Strings and wrapped values go in by pointer into one scratch
	// allocation: each stored in an interface directly would be an
	// allocation of its own. appendCanonical knows *string, *time.Time and
	// *direct; masking only ever replaces such a value.
	sc := &docScratch{ts: ts}
	doc := make(map[string]any, 16)
	str := func(key, v string) {
		p := &sc.str[sc.nstr]
		sc.nstr++
		*p = v
		doc[key] = p
	}
	str("decision_id", ev.DecisionID)
	doc["timestamp"] = &sc.ts
	str("path", ev.Path)
	str("reason", ev.Reason)
	doc["allow"] = ev.Allow
	put := func(key string, v any) error {
		if walk(key) {
			g, err := generic(v)
			if err != nil {
				return fmt.Errorf("%s: %w", key, err)
			}
			doc[key] = g
			return nil
		}
		p := &sc.direct[sc.ndirect]
		sc.ndirect++
		p.v = v
		doc[key] = p
		return nil
	}
	if ev.Input != nil {
		if err := put("input", ev.Input); err != nil {
			return nil, err
		}
	}
	if ev.Result != nil {
		if err := put("result", ev.Result); err != nil {
			return nil, err
		}
	}
	if len(ev.Bundles) > 0 {
		if walk("bundles") {
			b := make(map[string]any, len(ev.Bundles))
			for name, info := range ev.Bundles {
				b[name] = map[string]any{"revision": info.Revision}
			}
			if err := put("bundles", b); err != nil {
				return nil, err
			}
		} else {
			p := &sc.direct[sc.ndirect]
			sc.ndirect++
			p.v = ev.Bundles
			doc["bundles"] = p
		}
	}
	if hasMetrics(ev.Metrics) {
		if err := put("metrics", ev.Metrics); err != nil {
			return nil, err
		}
	}
	if len(ev.Labels) > 0 {
		if err := put("labels", ev.Labels); err != nil {
			return nil, err
		}
	}
	if ev.RequestedBy != "" {
		str("requested_by", ev.RequestedBy)
	}
	if ev.Subject != "" {
		str("subject", ev.Subject)
	}
	if ev.ClientID != "" {
		str("client_id", ev.ClientID)
	}
	if ev.Caller != "" {
		str("caller", ev.Caller)
	}
	if len(ev.Masked) > 0 {
		if err := put("masked", ev.Masked); err != nil {
			return nil, err
		}
	}
	return doc, nil
}

// docScratch holds the values eventDoc stores by pointer.
type docScratch struct {
	ts      time.Time
	str     [7]string
	nstr    int
	direct  [6]direct
	ndirect int
}

// generic deep-copies v into map[string]any / []any / string / json.Number /
// bool / nil. Common types are converted directly; anything else goes through
// encoding/json, whose output defines the result (struct tags, Marshalers).
func generic(v any) (any, error) {
	switch v := v.(type) {
	case nil, bool, string:
		return v, nil
	case json.Number:
		// As encoding/json writes it: "" as 0, an invalid literal refused.
		if v == "" {
			return json.Number("0"), nil
		}
		if !validNumber(string(v)) {
			return nil, fmt.Errorf("json: invalid number literal %q", string(v))
		}
		return v, nil
	case int:
		return json.Number(strconv.Itoa(v)), nil
	case int64:
		return json.Number(strconv.FormatInt(v, 10)), nil
	case int32:
		return json.Number(strconv.FormatInt(int64(v), 10)), nil
	case uint64:
		return json.Number(strconv.FormatUint(v, 10)), nil
	case uint32:
		return json.Number(strconv.FormatUint(uint64(v), 10)), nil
	case uint:
		return json.Number(strconv.FormatUint(uint64(v), 10)), nil
	case float64:
		return floatNumber(v, 64)
	case float32:
		return floatNumber(float64(v), 32)
	case []any:
		if v == nil {
			return nil, nil
		}
		out := make([]any, len(v))
		for i, e := range v {
			g, err := generic(e)
			if err != nil {
				return nil, err
			}
			out[i] = g
		}
		return out, nil
	case []string:
		if v == nil {
			return nil, nil
		}
		out := make([]any, len(v))
		for i, s := range v {
			out[i] = s
		}
		return out, nil
	case map[string]any:
		if v == nil {
			return nil, nil
		}
		out := make(map[string]any, len(v))
		for k, e := range v {
			if !utf8.ValidString(k) { // encoding/json would merge keys it repairs
				return roundTrip(v)
			}
			g, err := generic(e)
			if err != nil {
				return nil, err
			}
			out[k] = g
		}
		return out, nil
	case *Canonical:
		return v.generic()
	case Object:
		return genericObject(v)
	case map[string]string:
		if v == nil {
			return nil, nil
		}
		out := make(map[string]any, len(v))
		for k, s := range v {
			if !utf8.ValidString(k) {
				return roundTrip(v)
			}
			out[k] = s
		}
		return out, nil
	default:
		return roundTrip(v)
	}
}

func roundTrip(v any) (any, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var g any
	if err := decodeStrict(raw, &g); err != nil {
		return nil, err
	}
	return g, nil
}

// floatNumber formats f as encoding/json does.
func floatNumber(f float64, bits int) (any, error) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return nil, fmt.Errorf("unsupported number %v", f)
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 {
		if bits == 64 && (abs < 1e-6 || abs >= 1e21) || bits == 32 && (float32(abs) < 1e-6 || float32(abs) >= 1e21) {
			format = 'e'
		}
	}
	b := strconv.AppendFloat(nil, f, format, -1, bits)
	if format == 'e' { // 1e-07 -> 1e-7
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return json.Number(b), nil
}

// validNumber reports whether s is a JSON number (RFC 8259), as
// encoding/json checks a json.Number before writing it.
func validNumber(s string) bool {
	if s == "" {
		return false
	}
	if s[0] == '-' {
		s = s[1:]
		if s == "" {
			return false
		}
	}
	switch {
	case s[0] == '0':
		s = s[1:]
	case '1' <= s[0] && s[0] <= '9':
		for s = s[1:]; s != "" && '0' <= s[0] && s[0] <= '9'; s = s[1:] {
		}
	default:
		return false
	}
	if len(s) >= 2 && s[0] == '.' && '0' <= s[1] && s[1] <= '9' {
		for s = s[2:]; s != "" && '0' <= s[0] && s[0] <= '9'; s = s[1:] {
		}
	}
	if len(s) >= 2 && (s[0] == 'e' || s[0] == 'E') {
		s = s[1:]
		if s[0] == '+' || s[0] == '-' {
			s = s[1:]
			if s == "" {
				return false
			}
		}
		for ; s != "" && '0' <= s[0] && s[0] <= '9'; s = s[1:] {
		}
	}
	return s == ""
}
