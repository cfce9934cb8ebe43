package decisionlog

import (
	"encoding/json"
	"math"
	"testing"
	"time"
)

type structResult struct {
	Allow   bool     `json:"allow"`
	Reasons []string `json:"reasons,omitempty"`
	Hidden  string   `json:"-"`
}

// TestEventDocMatchesRoundTrip pins eventDoc to what decoding json.Marshal(ev)
// gives, which is the documented meaning of a record.
func TestEventDocMatchesRoundTrip(t *testing.T) {
	odd := testEvent(7)
	odd.Timestamp = time.Date(2026, 1, 2, 3, 4, 5, 600, time.FixedZone("X", -7200))
	odd.Input = map[string]any{
		"floats":    []any{1e21, 1e-7, 0.1, math.Copysign(0, -1), 123456789.125, float32(0.1), float32(1e-7)},
		"ints":      []any{math.MaxInt64, uint64(math.MaxUint64), int32(-5), int8(3), uint16(9)},
		"number":    json.Number("1.50"),
		"nil_slice": []any(nil),
		"nil_map":   map[string]any(nil),
		"nil_strs":  []string(nil),
		"strs":      []string{"a", "b"},
		"labels":    map[string]string{"k": "v"},
		"struct":    structResult{Allow: true, Hidden: "x"},
		"bad_key":   map[string]any{"a\xff": 1, "b": "\xfe"},
		"ptr":       &structResult{Reasons: []string{"r"}},
		"bytes":     []byte("hi"),
		"time":      time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	odd.Result = structResult{Allow: false, Reasons: []string{"missing_scope"}}
	odd.Masked = []string{"/input/x"}
	odd.Caller = "token:billing"
	odd.RequestedBy, odd.Subject, odd.ClientID = "127.0.0.1:1", "app:s", "c"
	odd.Metrics = map[string]any{"timer_ns": int64(42), "ratio": 0.5}

	typedNil := testEvent(8)
	typedNil.Input = map[string]any(nil)
	typedNil.Result = nil
	typedNil.Bundles = map[string]BundleInfo{}

	walks := map[string]func(string) bool{
		"generic": func(string) bool { return true },
		"direct":  func(string) bool { return false },
		"masking": (&Masker{}).walks,
	}
	for name, ev := range map[string]Event{"typical": testEvent(1), "bench": benchEvent(), "server": serverEvent(), "odd": odd, "typed nil": typedNil, "zero": {}} {
		for how, walk := range walks {
			name := name + "/" + how
			direct, err := eventDoc(ev, walk)
			if err != nil {
				t.Fatalf("%s: eventDoc: %v", name, err)
			}
			compareRoundTrip(t, name, ev, direct)
		}
	}
}

func compareRoundTrip(t *testing.T, name string, ev Event, direct map[string]any) {
	t.Helper()
	ev.Timestamp = ev.Timestamp.UTC()
	raw, err := json.Marshal(ev)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	var viaJSON map[string]any
	if err := decodeStrict(raw, &viaJSON); err != nil {
		t.Fatal(err)
	}
	delete(viaJSON, "prev_hash")
	delete(viaJSON, "hash")
	a, err := appendCanonical(nil, direct)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	b, err := appendCanonical(nil, viaJSON)
	if err != nil {
		t.Fatal(err)
	}
	if string(a) != string(b) {
		t.Errorf("%s:\n direct %s\nvia json %s", name, a, b)
	}
}

func TestEventDocErrors(t *testing.T) {
	for name, ev := range map[string]Event{
		"NaN":           {Input: map[string]any{"x": math.NaN()}},
		"channel":       {Result: make(chan int)},
		"bad number":    {Metrics: map[string]any{"n": json.Number("1x")}},
		"year 10000":    {Timestamp: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)},
		"func in slice": {Input: []any{func() {}}},
		"func result":   {Result: []any{func() {}}},
		"NaN metric":    {Metrics: map[string]any{"x": math.Inf(1)}},
		"bad number 2":  {Result: map[string]any{"n": json.Number("01")}},
	} {
		for _, walk := range []func(string) bool{func(string) bool { return true }, func(string) bool { return false }} {
			doc, err := eventDoc(ev, walk)
			if err == nil {
				_, _, err = splitCanonical(doc) // direct members fail when encoded
			}
			if err == nil {
				t.Errorf("%s: no error", name)
			}
		}
	}
}
