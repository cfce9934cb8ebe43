package decisionlog

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"
)

// streamAgrees checks that the streaming encoder gives exactly what the
// generic-document path gives for ev under masker m: the same bytes, or an
// error from both.
func streamAgrees(t *testing.T, m *Masker, ev Event) error {
	t.Helper()
	want, wantErr := prepareDoc(m, ev)
	line, n, err := encodeRecord(nil, &maskWriter{pointers: m.pointers}, ev)
	head, tail := line[:min(n, len(line))], line[min(n, len(line)):]
	if (err != nil) != (wantErr != nil) {
		t.Fatalf("stream error %v, document path error %v", err, wantErr)
	}
	if err != nil {
		return err
	}
	if !bytes.Equal(head, want.head) || !bytes.Equal(tail, want.tail) {
		t.Fatalf("stream and document path differ\nstream head %s\n   doc head %s\nstream tail %s\n   doc tail %s", head, want.head, tail, want.tail)
	}
	return nil
}

type typedInput struct {
	Name  string            `json:"name"`
	Token string            `json:"token,omitempty"`
	Tags  map[string]string `json:"tags"`
	N     float32           `json:"n"`
}

func TestStreamMatchesDoc(t *testing.T) {
	pointerSets := [][]string{
		nil,
		{"/input/resource/owner", "/input/a~1b/c~0d", "/input/list/1", "/input/list/9", "/input/list/-1", "/input/nope/x"},
		{"/input"},
		{"/input/context/secret/inner", "/input/headers/Cookie/0", "/input/context/x/0"},
		{"/input/granted_scopes/0", "/input/headers", "/input/context"},
	}
	inputs := []any{
		nil,
		"Bearer abc",
		[]any{"eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0.", json.Number("1.50"), nil, true},
		map[string]any(nil),
		[]string(nil),
		map[string]any{
			"subject": "u1", "granted_scopes": []string{"user:read", "bearer x"},
			"context": map[string]any{
				"SESSION_TOKEN": "a", "x": []any{map[string]any{"passwd": "b"}, "c"},
				"creds":  map[string]any{"my_credential": map[string]any{"k": json.Number("1")}},
				"secret": map[string]any{"inner": "v", "other": 1}, "already_token": "***",
				"ok": "c", "nested": map[string]string{"api_key": "k", "fine": "v"},
			},
			"headers": map[string]any{"AUTHORIZATION": "Basic eA==", "Cookie": []any{"a=b"}, "Accept": "*/*", "set-cookie": "***"},
			"a/b":     map[string]any{"c~d": 5},
			"list":    []any{"x", "y"},
			"resource": map[string]any{"owner": map[string]any{"id": "u1"}, "weird\x00key": "\xff\u2028",
				"n": 1e21, "m": float32(0.1), "i": int64(-3), "u": uint(7)},
			"typed": typedInput{Name: "n", Token: "eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0.x", Tags: map[string]string{"b": "Bearer q"}, N: 1.5},
		},
		map[string]any{"headers": map[string]string{"Authorization": "Bearer t", "X": "y"}, "context": []any{map[string]any{"token": 1}}},
		map[string]any{"bad\xffkey": "v", "bad\xfekey": "w", "context": map[string]any{"pass\xffword": "x"}},
		map[string]any{"context": map[string]any{"secret": json.Number("01")}},     // invalid number under a masked key
		map[string]any{"context": map[string]any{"fine": json.Number("1e+")}},      // invalid number
		map[string]any{"context": map[string]any{"f": math.Inf(1)}},                // unsupported number
		map[string]any{"context": map[string]any{"password": make(chan int)}},      // unsupported type, masked
		map[string]any{"context": map[string]any{"n": json.Number(""), "s": "\t"}}, // "" is written as 0
	}
	for _, ps := range pointerSets {
		m, err := NewMasker(ps...)
		if err != nil {
			t.Fatal(err)
		}
		if !m.fastMasker() {
			t.Fatalf("pointers %q should be streamable", ps)
		}
		for i, in := range inputs {
			t.Run(strings.Join(ps, ",")+"/"+string(rune('a'+i)), func(t *testing.T) {
				ev := serverEvent()
				ev.Input = in
				streamAgrees(t, m, ev)
				ev.Masked = []string{"/input/z", "/input/a"}
				streamAgrees(t, m, ev)
				bare := Event{Timestamp: t0, Input: in, Result: map[string]any{"x": json.Number("2")}}
				streamAgrees(t, m, bare)
			})
		}
	}
}

func TestStreamFallsBack(t *testing.T) {
	for _, ps := range [][]string{
		{"/result/remedy"},               // outside input
		{"/input/a", "/input/a/b"},       // nested: order decides what is recorded
		{"/input/a", "/input/a"},         // repeated
		{"/labels/hostname", "/input/x"}, // one outside input
	} {
		m, err := NewMasker(ps...)
		if err != nil {
			t.Fatal(err)
		}
		if m.fastMasker() {
			t.Errorf("pointers %q: streaming path taken, want the document path", ps)
		}
	}
}

// FuzzStreamMatchesDoc decodes input as the record's input and pointers
// (newline separated) as the masker, and holds the streaming encoder to the
// document path.
func FuzzStreamMatchesDoc(f *testing.F) {
	f.Add([]byte(`{"context":{"client_secret":"s","a":[{"token":1}]},"headers":{"Cookie":"c"},"x":"Bearer y"}`), "")
	f.Add([]byte(`{"resource":{"owner":{"id":"u1"}},"list":["x","y"]}`), "/input/resource/owner\n/input/list/1\n/input/list/-1")
	f.Add([]byte(`{"context":{"secret":{"inner":"v"}}}`), "/input/context/secret/inner")
	f.Add([]byte(`"eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0."`), "/input")
	f.Add([]byte(`{"a\ud800":1,"a\ufffd":2}`), "")
	f.Fuzz(func(t *testing.T, input []byte, pointers string) {
		var in any
		if decodeStrict(input, &in) != nil {
			return
		}
		var ps []string
		if pointers != "" {
			ps = strings.Split(pointers, "\n")
		}
		m, err := NewMasker(ps...)
		if err != nil || !m.fastMasker() {
			return
		}
		ev := serverEvent()
		ev.Input = in
		streamAgrees(t, m, ev)
		// The same input already encoded: both paths decode it to mask it.
		c := new(Canonical)
		if err := c.Encode(in); err != nil {
			return
		}
		want, err := prepareDoc(m, ev)
		if err != nil {
			return
		}
		ev.Input = c
		streamAgrees(t, m, ev)
		got, err := prepareDoc(m, ev)
		if err != nil {
			t.Fatalf("input as a Canonical: %v", err)
		}
		if !bytes.Equal(got.head, want.head) || !bytes.Equal(got.tail, want.tail) {
			t.Fatalf("input as a Canonical recorded as\n%s%s\nwant\n%s%s", got.head, got.tail, want.head, want.tail)
		}
	})
}

// members is an Object for the tests: its members in the order given.
type members []struct {
	key string
	v   any
}

func (ms members) LogMembers(w MemberWriter) {
	for _, m := range ms {
		switch v := m.v.(type) {
		case string:
			w.String(m.key, v)
		case []string:
			w.Strings(m.key, v)
		default:
			w.Value(m.key, v)
		}
	}
}

func TestStreamObject(t *testing.T) {
	inputs := []any{
		members{{"action", "a"}, {"client_id", "Bearer x"}, {"context", map[string]any{"secret": "s", "n": members{{"token", "t"}}}},
			{"granted_scopes", []string{"a", "eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0."}}, {"headers", members{{"Cookie", "c"}, {"X", "y"}}},
			{"requested_scopes", []string(nil)}, {"resource", map[string]any{"owner": "u"}}, {"subject", "u1"}},
		map[string]any{"nested": members{{"a", 1}, {"b", []any{members{{"c", "Bearer z"}}}}}},
		members{{"b", 1}, {"a", 2}},    // out of order: refused by both
		members{{"a", 1}, {"a", 2}},    // repeated: refused by both
		members{{"a\xff", 1}},          // invalid key: refused by both
		members{{"a", make(chan int)}}, // unsupported value
		members{},                      // empty object
		members{{"context", members{{"password", members{{"x", "y"}}}}}},
	}
	for _, ps := range [][]string{nil, {"/input/resource/owner", "/input/granted_scopes/0", "/input/context/password/x"}} {
		m, err := NewMasker(ps...)
		if err != nil {
			t.Fatal(err)
		}
		for i, in := range inputs {
			t.Run(string(rune('a'+i)), func(t *testing.T) {
				ev := serverEvent()
				ev.Input = in
				err := streamAgrees(t, m, ev)
				if wantErr := i >= 2 && i <= 5; (err != nil) != wantErr {
					t.Errorf("error %v, want an error: %v", err, wantErr)
				}
			})
		}
	}
}
