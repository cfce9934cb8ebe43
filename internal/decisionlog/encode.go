package decisionlog

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"
	"unicode/utf8"
)

// eventDoc turns an event into the generic form that is masked and hashed:
// the value that decoding json.Marshal(ev) with UseNumber would give, built
// directly because the round trip costs more than all the rest of a record.
// Every map and slice is new, so masking never touches the caller's values.
// TestEventDocMatchesRoundTrip keeps it in step with Event's JSON tags.
func eventDoc(ev Event) (map[string]any, error) {
	ts := ev.Timestamp.UTC()
	if y := ts.Year(); y < 0 || y > 9999 {
		return nil, fmt.Errorf("timestamp %v: year outside [0,9999]", ts)
	}
	doc := map[string]any{
		"decision_id": ev.DecisionID,
		"timestamp":   ts.Format(time.RFC3339Nano),
		"path":        ev.Path,
		"reason":      ev.Reason,
		"allow":       ev.Allow,
	}
	put := func(key string, v any) error {
		g, err := generic(v)
		if err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		doc[key] = g
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
		b := make(map[string]any, len(ev.Bundles))
		for name, info := range ev.Bundles {
			b[name] = map[string]any{"revision": info.Revision}
		}
		if err := put("bundles", b); err != nil {
			return nil, err
		}
	}
	if len(ev.Metrics) > 0 {
		if err := put("metrics", ev.Metrics); err != nil {
			return nil, err
		}
	}
	if len(ev.Labels) > 0 {
		if err := put("labels", ev.Labels); err != nil {
			return nil, err
		}
	}
	for key, s := range map[string]string{"requested_by": ev.RequestedBy, "subject": ev.Subject, "client_id": ev.ClientID} {
		if s != "" {
			doc[key] = s
		}
	}
	if len(ev.Masked) > 0 {
		if err := put("masked", ev.Masked); err != nil {
			return nil, err
		}
	}
	return doc, nil
}

// generic deep-copies v into map[string]any / []any / string / json.Number /
// bool / nil. Common types are converted directly; anything else goes through
// encoding/json, whose output defines the result (struct tags, Marshalers).
func generic(v any) (any, error) {
	switch v := v.(type) {
	case nil, bool, string:
		return v, nil
	case json.Number:
		return roundTrip(v) // encoding/json validates the literal
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
