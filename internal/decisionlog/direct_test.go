package decisionlog

import (
	"encoding/json"
	"math"
	"testing"
	"time"
	"unicode/utf8"
)

type omitAll struct {
	S   string         `json:"s,omitempty"`
	B   bool           `json:"b,omitempty"`
	I   int8           `json:"i,omitempty"`
	U   uint           `json:"u,omitempty"`
	F   float32        `json:"f,omitempty"`
	P   *int           `json:"p,omitempty"`
	A   any            `json:"a,omitempty"`
	L   []int          `json:"l,omitempty"`
	M   map[string]int `json:"m,omitempty"`
	St  structResult   `json:"st,omitempty"`
	Arr [0]int         `json:"arr,omitempty"`
}

type untagged struct {
	Zeta    string
	Alpha   int
	private string
	Ünï     bool
}

type inner struct{ X int }

type embeds struct {
	inner
	Y int
}

type withString struct {
	N int `json:"n,string"`
}

type withOmitZero struct {
	T time.Time `json:"t,omitzero"`
}

type badTag struct {
	A int `json:"a\tb"`
}

type valueMarshaler struct{ V int }

func (v valueMarshaler) MarshalJSON() ([]byte, error) { return []byte(`{"custom":true}`), nil }

type ptrMarshaler struct{ V int }

func (p *ptrMarshaler) MarshalJSON() ([]byte, error) { return []byte(`"pointer method"`), nil }

type holdsPtrMarshaler struct {
	Val ptrMarshaler  `json:"val"`
	Ptr *ptrMarshaler `json:"ptr"`
}

type named string

type namedBytes []byte

type textKey string

func (k textKey) MarshalText() ([]byte, error) { return []byte("k-" + string(k)), nil }

// TestAppendDirectMatchesGeneric pins appendDirect to appendCanonical(generic(v)),
// which TestEventDocMatchesRoundTrip pins to the JSON round trip.
func TestAppendDirectMatchesGeneric(t *testing.T) {
	one := 1
	pOne := &one
	values := map[string]any{
		"server result":   serverEvent().Result,
		"tagged":          structResult{Allow: true, Reasons: []string{"a", "b"}, Hidden: "h"},
		"omit zero":       omitAll{},
		"omit set":        omitAll{S: "s", B: true, I: -1, U: 2, F: 0.1, P: &one, A: 0, L: []int{}, M: map[string]int{"k": 1}},
		"untagged":        untagged{Zeta: "z", Alpha: 1, private: "p", Ünï: true},
		"embedded":        embeds{inner{1}, 2},
		"string option":   withString{N: 5},
		"omitzero":        withOmitZero{},
		"bad tag":         badTag{1},
		"value marshaler": []any{valueMarshaler{1}, &valueMarshaler{2}},
		"ptr marshaler":   holdsPtrMarshaler{Val: ptrMarshaler{1}, Ptr: &ptrMarshaler{2}},
		"ptr marshaler*":  &holdsPtrMarshaler{Val: ptrMarshaler{1}},
		"time":            time.Date(2026, 1, 2, 3, 4, 5, 6, time.FixedZone("X", 3600)),
		"time in map":     map[string]any{"t": time.Unix(0, 0).UTC()},
		"bytes":           []byte("hello"),
		"named bytes":     namedBytes("hi"),
		"array":           [3]int{1, 2, 3},
		"int keys":        map[int]string{2: "b", 1: "a"},
		"text keys":       map[textKey]int{"a": 1},
		"named keys":      map[named]int{"b": 2, "a": 1},
		"ptr values":      map[string]*int{"one": &one, "nil": nil},
		"ptr ptr":         &pOne,
		"nil ptr":         (*int)(nil),
		"named string":    named("n\u2028\x01"),
		"numbers":         []any{json.Number("1.50"), json.Number(""), json.Number("-0e+7"), 1e21, 1e-7, float32(1e-7), float32(3.4e38), math.Copysign(0, -1), int8(-3), uint64(math.MaxUint64), math.MaxInt64},
		"bad number":      []any{json.Number("01")},
		"NaN":             map[string]any{"x": math.NaN()},
		"channel":         []any{make(chan int)},
		"invalid utf8":    map[string]any{"a\xffb": "x", "c": "\xfe\xff", "d": []string{"\xc3"}},
		"invalid keys":    map[string]string{"\xff": "1", "\ufffd": "2"},
		"nested":          map[string]any{"a": []any{map[string]any{"b": nil, "c": []string(nil)}, []any(nil), map[string]any(nil)}, "e": map[string]string(nil)},
		"interface field": struct {
			A any `json:"a"`
			B any `json:"b"`
		}{A: nil, B: structResult{}},
		"html": "<a href=\"x\">&</a>",
		"object": members{{"a", "Bearer kept"}, {"b", []string{"x", "eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0."}}, {"c", map[string]any{"token": "t"}},
			{"d", members{{"e", time.Unix(0, 0).UTC()}, {"f", structResult{Allow: true}}}}, {"g", nil}},
		"object in map":       map[string]any{"o": members{{"z", 1}}, "p": []any{members{}}},
		"object out of order": members{{"b", 1}, {"a", 2}},
		"object bad value":    members{{"a", math.NaN()}},
		"object bad number":   members{{"h", json.Number("01")}},
	}
	for name, v := range values {
		if err := checkDirect(v); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestValidNumber(t *testing.T) {
	for s, want := range map[string]bool{
		"0": true, "-0": true, "1.5": true, "1e9": true, "1E+9": true, "-1.25e-3": true, "10": true,
		"": false, "-": false, "01": false, "1.": false, ".5": false, "1e": false, "1e+": false, "+1": false, "0x1": false, "1x": false, "NaN": false,
	} {
		if got := validNumber(s); got != want {
			t.Errorf("validNumber(%q) = %v", s, got)
		}
		var v any
		if err := json.Unmarshal([]byte(s), &v); (err == nil) != want && s != "" {
			t.Errorf("%q: encoding/json disagrees", s)
		}
	}
}

// appendStringRef is the byte-at-a-time definition of appendString's output
// (see the canonical form in chain.go).
func appendStringRef(dst []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				dst = append(dst, "\uFFFD"...)
			} else {
				dst = append(dst, s[i:i+size]...)
			}
			i += size
			continue
		}
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
			if c < 0x20 {
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			} else {
				dst = append(dst, c)
			}
		}
		i++
	}
	return append(dst, '"')
}

func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "plain", "q\"b\\s", "\x00\x1f\x7f", "é\u2028\U0001F600", "a\xffb\xc3", "\xed\xa0\x80", "tab\tnl\ncr\r",
		"eight ok", "0123456789abcdef\"x", "aaaaaaa\x1fbbbbbbbbb", "aaaaaaaa\x80bbbbbbb", "~~~~~~~~ !!!!!!!!\\", "1234567\x7f"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := appendString([]byte("x"), s), appendStringRef([]byte("x"), s); string(got) != string(want) {
			t.Fatalf("%q: got %s want %s", s, got, want)
		}
	})
}
