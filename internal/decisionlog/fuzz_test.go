package decisionlog

import (
	"bytes"
	"testing"
)

// FuzzVerifyLine feeds arbitrary bytes to the line parser and verifier, the
// canonical encoder and the stream verifier: none may panic, an accepted line
// must be well formed, and canonical JSON must be a fixed point (re-decoding
// and re-encoding it gives the same bytes), which is what lets Verify
// recompute a hash from the line on disk.
func FuzzVerifyLine(f *testing.F) {
	doc := map[string]any{"allow": true, "reason": "allowed", "decision_id": "d"}
	head, tail, err := splitCanonical(doc)
	if err != nil {
		f.Fatal(err)
	}
	line, _ := appendSealed(nil, head, tail, GenesisHash)
	for _, seed := range [][]byte{
		line,
		line[:len(line)/2],
		bytes.Replace(line, []byte("true"), []byte("false"), 1),
		[]byte(`{}`),
		[]byte(`{"hash":1,"prev_hash":null}`),
		[]byte(`[1,2,3]`),
		[]byte(`{"a":"\ud800","b":1e999}` + "\n" + `{"x":`),
		[]byte("\xff\xfe\n\n"),
		{},
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		line := bytes.TrimSuffix(data, []byte{'\n'})
		rec, err := verifyLine(line)
		if err == nil && (!IsHexHash(rec.hash) || !IsHexHash(rec.prev)) {
			t.Fatalf("accepted a record with hash %q prev %q", rec.hash, rec.prev)
		}
		_, _ = DecodeEvent(line)

		var v any
		if decodeStrict(line, &v) == nil {
			c1, err := appendCanonical(nil, v)
			if err != nil {
				t.Fatalf("canonical of decoded JSON: %v", err)
			}
			var v2 any
			if err := decodeStrict(c1, &v2); err != nil {
				t.Fatalf("canonical output %q does not decode: %v", c1, err)
			}
			c2, err := appendCanonical(nil, v2)
			if err != nil || !bytes.Equal(c1, c2) {
				t.Fatalf("canonical is not a fixed point:\n%q\n%q", c1, c2)
			}
		}

		var v3 verifier
		_ = v3.file("fuzz.log", bytes.NewReader(data))
		if v3.report.Records > bytes.Count(data, []byte{'\n'}) {
			t.Fatalf("verified %d records in %d lines", v3.report.Records, bytes.Count(data, []byte{'\n'}))
		}
	})
}
