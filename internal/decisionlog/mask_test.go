package decisionlog

import (
	"context"
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"
)

func decodeDoc(t *testing.T, s string) map[string]any {
	t.Helper()
	var doc map[string]any
	if err := decodeStrict([]byte(s), &doc); err != nil {
		t.Fatal(err)
	}
	return doc
}

func TestMaskerApply(t *testing.T) {
	tests := []struct {
		name       string
		pointers   []string
		doc        string
		want       string
		wantMasked []string
	}{
		{"nothing to mask", nil,
			`{"input":{"subject":"u1","context":{"ip":"1.2.3.4"}},"result":{"allow":true}}`,
			`{"input":{"context":{"ip":"1.2.3.4"},"subject":"u1"},"result":{"allow":true}}`, nil},
		{"secret keys at any depth of context", nil,
			`{"input":{"context":{"SESSION_TOKEN":"a","x":[{"passwd":"b"}],"creds":{"my_credential":{"k":1}},"ok":"c"}}}`,
			`{"input":{"context":{"SESSION_TOKEN":"***","creds":{"my_credential":"***"},"ok":"c","x":[{"passwd":"***"}]}}}`,
			[]string{"/input/context/SESSION_TOKEN", "/input/context/creds/my_credential", "/input/context/x/0/passwd"}},
		{"secret-looking keys are masked at any depth", nil,
			`{"input":{"token_type":"refresh","resource":{"attributes":{"password":"p"}},"context":{"nested":{"private_key":"k","Session":"s","X-Api-Key":"x"}},"owner":"o"}}`,
			`{"input":{"context":{"nested":{"Session":"***","X-Api-Key":"***","private_key":"***"}},"owner":"o","resource":{"attributes":{"password":"***"}},"token_type":"***"}}`,
			[]string{"/input/context/nested/Session", "/input/context/nested/X-Api-Key", "/input/context/nested/private_key", "/input/resource/attributes/password", "/input/token_type"}},
		{"a JWT inside a longer string", nil,
			`{"input":{"context":{"note":"sent eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln by mistake"}}}`,
			`{"input":{"context":{"note":"***"}}}`, []string{"/input/context/note"}},
		{"headers", nil,
			`{"input":{"headers":{"AUTHORIZATION":"Basic eA==","Cookie":"a=b","Set-Cookie":["c"],"Proxy-Authorization":"x","Accept":"*/*"}}}`,
			`{"input":{"headers":{"AUTHORIZATION":"***","Accept":"*/*","Cookie":"***","Proxy-Authorization":"***","Set-Cookie":"***"}}}`,
			[]string{"/input/headers/AUTHORIZATION", "/input/headers/Cookie", "/input/headers/Proxy-Authorization", "/input/headers/Set-Cookie"}},
		{"bearer tokens and JWTs anywhere in input", nil,
			`{"input":{"a":" BEARER x","b":["ok","bearer\ty"],"c":{"d":"eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0."},"e":"Bearer","f":"bearer of news"},"result":"Bearer kept"}`,
			`{"input":{"a":"***","b":["ok","***"],"c":{"d":"***"},"e":"Bearer","f":"***"},"result":"Bearer kept"}`,
			[]string{"/input/a", "/input/b/1", "/input/c/d", "/input/f"}},
		{"configured pointers, escapes, arrays, missing paths", []string{"/input/resource/owner", "/input/a~1b/c~0d", "/input/list/1", "/input/list/9", "/input/list/01", "/input/nope/x", "/result/deny"},
			`{"input":{"resource":{"owner":{"id":"u1"}},"a/b":{"c~d":5},"list":["x","y"]},"result":{"allow":false}}`,
			`{"input":{"a/b":{"c~d":"***"},"list":["x","***"],"resource":{"owner":"***"}},"result":{"allow":false}}`,
			[]string{"/input/a~1b/c~0d", "/input/list/1", "/input/resource/owner"}},
		{"whole input by pointer", []string{"/input"},
			`{"input":{"context":{"secret":"s"}},"decision_id":"d"}`,
			`{"decision_id":"d","input":"***"}`, []string{"/input"}},
		{"non-object input", nil,
			`{"input":"Bearer abc"}`, `{"input":"***"}`, []string{"/input"}},
		{"already masked values are not reported again", nil,
			`{"input":{"context":{"secret":"***"},"headers":{"cookie":"***"}}}`,
			`{"input":{"context":{"secret":"***"},"headers":{"cookie":"***"}}}`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := NewMasker(tt.pointers...)
			if err != nil {
				t.Fatal(err)
			}
			doc := decodeDoc(t, tt.doc)
			masked := m.apply(doc)
			got, err := appendCanonical(nil, doc)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("masked doc\n got %s\nwant %s", got, tt.want)
			}
			if !slices.Equal(masked, tt.wantMasked) {
				t.Errorf("masked = %q, want %q", masked, tt.wantMasked)
			}
		})
	}
}

func TestNewMaskerRejects(t *testing.T) {
	for _, p := range []string{"", "input/x", "/input/~2", "/input/a~", "/hash", "/prev_hash", "/masked/0"} {
		if _, err := NewMasker(p); err == nil {
			t.Errorf("NewMasker(%q) succeeded", p)
		}
	}
	m, err := NewMasker("/input/x", "/input/y")
	if err != nil || !slices.Equal(m.Pointers(), []string{"/input/x", "/input/y"}) {
		t.Errorf("Pointers = %v, %v", m.Pointers(), err)
	}
}

func TestCanonical(t *testing.T) {
	tests := []struct{ in, want string }{
		{`{"b":1,"a":[true,false,null],"A":{}}`, `{"A":{},"a":[true,false,null],"b":1}`},
		{`{ "n" : [ 1.50, -0, 1E+2, 12345678901234567890123 ] }`, `{"n":[1.50,-0,1E+2,12345678901234567890123]}`},
		{`"\u003c\u0026\u003e \u2028 é \ud83d\ude00"`, "\"<&> \u2028 é 😀\""},
		{`"q\"b\\s\/ \b\f\n\r\t \u0001\u001f\u007f"`, `"q\"b\\s/ \b\f\n\r\t \u0001\u001f` + "\x7f\""},
		{`"\ud800 lone surrogate"`, "\"\uFFFD lone surrogate\""},
		{"\"bad \xff utf8\"", "\"bad \uFFFD utf8\""},
		{`{"é":1,"z":2,"ä":3}`, `{"z":2,"ä":3,"é":1}`}, // bytewise UTF-8 order
	}
	for _, tt := range tests {
		var v any
		if err := decodeStrict([]byte(tt.in), &v); err != nil {
			t.Fatalf("%s: %v", tt.in, err)
		}
		got, err := appendCanonical(nil, v)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != tt.want {
			t.Errorf("canonical(%s)\n got %s\nwant %s", tt.in, got, tt.want)
		}
	}
	if _, err := appendCanonical(nil, map[string]any{"f": 1.5}); err == nil {
		t.Error("float64 accepted: numbers must come from a UseNumber decode")
	}
}

func TestSealMatchesVerify(t *testing.T) {
	doc := decodeDoc(t, `{"allow":true,"reason":"allowed","input":{"x":"<&>"},"decision_id":"d1","timestamp":"2026-11-23T18:00:00Z","path":"p"}`)
	head, tail, err := splitCanonical(doc)
	if err != nil {
		t.Fatal(err)
	}
	line, hash := appendSealed(nil, head, tail, GenesisHash)
	if len(line) != sealedLen(head, tail) {
		t.Errorf("sealedLen = %d, line is %d bytes", sealedLen(head, tail), len(line))
	}
	rec, err := verifyLine(line[:len(line)-1])
	if err != nil || rec.hash != hash || rec.prev != GenesisHash {
		t.Fatalf("verifyLine(sealed) = %+v, %v", rec, err)
	}
	var back map[string]any
	if err := json.Unmarshal(line, &back); err != nil || back["allow"] != true || !strings.Contains(string(line), `"x":"<&>"`) {
		t.Errorf("sealed line = %s", line)
	}
}

// TestRecordMaskPointers: Event.MaskPointers mask this record only, on the
// streaming path and on the document path, and a bad pointer is refused.
func TestRecordMaskPointers(t *testing.T) {
	for _, tc := range []struct {
		configured, record []string
		stream             bool
	}{
		{nil, []string{"/input/resource/owner"}, true},
		{[]string{"/labels/id"}, []string{"/input/resource/owner", "/result/allow"}, false},
	} {
		m, err := NewMasker(tc.configured...)
		if err != nil {
			t.Fatal(err)
		}
		path := logPath(t)
		w := openT(t, Options{Path: path, Masker: m})
		ev := testEvent(1)
		ev.Input.(map[string]any)["resource"] = map[string]any{"owner": "u1", "type": "project"}
		ev.MaskPointers = tc.record
		if with, _ := m.with(tc.record); with.fastMasker() != tc.stream {
			t.Fatalf("%q: streaming path %v, want %v", tc.record, !tc.stream, tc.stream)
		}
		if err := w.LogDurable(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
		plain := testEvent(2)
		plain.Input.(map[string]any)["resource"] = map[string]any{"owner": "u2"}
		if err := w.LogDurable(context.Background(), plain); err != nil {
			t.Fatal(err)
		}
		bad := testEvent(3)
		bad.MaskPointers = []string{"input/no-slash"}
		if err := w.LogDurable(context.Background(), bad); err == nil {
			t.Error("a record with an invalid mask pointer was accepted")
		}
		closeT(t, w)
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		if len(lines) != 2 {
			t.Fatalf("%d records, want 2", len(lines))
		}
		if !strings.Contains(lines[0], `"resource":{"owner":"***","type":"project"}`) || !strings.Contains(lines[0], `"/input/resource/owner"`) ||
			!tc.stream && !strings.Contains(lines[0], `"result":{"allow":"***"`) {
			t.Errorf("record 1 not masked: %s", lines[0])
		}
		if !strings.Contains(lines[1], `"owner":"u2"`) || strings.Contains(lines[1], "/input/resource/owner") {
			t.Errorf("record 2 masked by record 1's pointers: %s", lines[1])
		}
		mustVerify(t, path)
	}
}
