package decisionlog

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func canonicalOf(t *testing.T, v any) *Canonical {
	t.Helper()
	c := new(Canonical)
	if err := c.Encode(v); err != nil {
		t.Fatal(err)
	}
	return c
}

// A record logs a Canonical exactly as it logs the value it was encoded
// from, on the streaming and the document path, in result and in input
// (where the masking rules still reach inside it).
func TestCanonicalRecordsAsItsValue(t *testing.T) {
	result := members{{"allow", false}, {"explain", []string{"a\u2028b", "\xff"}}, {"n", int64(-7)}, {"reason", "missing_scope"}}
	input := map[string]any{"subject": "u1", "context": map[string]any{"client_secret": "s"}, "token": "Bearer abc", "n": 1.5}
	for _, ps := range [][]string{nil, {"/input/subject"}, {"/result/reason"}} {
		m, err := NewMasker(ps...)
		if err != nil {
			t.Fatal(err)
		}
		t.Run(strings.Join(ps, ","), func(t *testing.T) {
			plain := serverEvent()
			plain.Input, plain.Result = input, result
			enc := plain
			enc.Input, enc.Result = canonicalOf(t, input), canonicalOf(t, result)
			want, err := prepareDoc(m, plain)
			if err != nil {
				t.Fatal(err)
			}
			got, err := prepareDoc(m, enc)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.head, want.head) || !bytes.Equal(got.tail, want.tail) {
				t.Errorf("document path: Canonical recorded as\n%s%s\nwant\n%s%s", got.head, got.tail, want.head, want.tail)
			}
			if m.fastMasker() {
				streamAgrees(t, m, enc)
			}
			if !bytes.Contains(want.head, []byte(`"context":{"client_secret":"***"}`)) || !bytes.Contains(want.head, []byte(`"token":"***"`)) {
				t.Errorf("input not masked: %s", want.head)
			}
		})
	}
}

func TestCanonicalBytes(t *testing.T) {
	var zero Canonical
	if got := string(zero.Bytes()); got != "null" {
		t.Errorf("zero Canonical = %s, want null", got)
	}
	c := canonicalOf(t, map[string]any{"b": 1, "a": []string{"x"}})
	if got, want := string(c.Bytes()), `{"a":["x"],"b":1}`; got != want {
		t.Errorf("Bytes() = %s, want %s", got, want)
	}
	if err := c.Encode(make(chan int)); err == nil {
		t.Error("Encode(chan) succeeded")
	}
	if got := string(c.Bytes()); got != "null" {
		t.Errorf("after a failed Encode: %s, want null", got)
	}
	var v any
	if err := json.Unmarshal(AppendString(nil, "a\"\\\x01\xff"), &v); err != nil || v != "a\"\\\x01\ufffd" {
		t.Errorf("AppendString round trip = %q, %v", v, err)
	}
}
