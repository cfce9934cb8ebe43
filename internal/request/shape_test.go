package request

import (
	"encoding/json"
	"strings"
	"testing"
)

var shapeSeeds = []string{
	`{"granted_scopes":["user:read"],"action":"user:read","context":{"a":[1,{"b":null}],"c":"x\"y"}}`,
	`{"action":"x","action":"y"}`,
	`{"action":"x","context":{"a":1,"a":2}}`,
	`{"action":"x","resource":{"kind":"p"}}`,
	`{"action":"x","resource":{"id":"1","attributes":{"kind":1,"kind":2}}}`,
	`{"a\u0063tion":"x","action":"y"}`,
	`{"action":"x","context":` + strings.Repeat(`{"a":`, 10) + `1` + strings.Repeat(`}`, 10) + `}`,
	`[[[[[[[[[1]]]]]]]]]`,
	`{"checks":[{"action":"a"},{"action":"b","action":"c"}]}`,
	`{} {}`, `"s"`, `12.5e-3`, `{"a" : [ ] , "b" : { } }`,
}

// TestScanShapeMatchesTokens: the fast scanner decides typical bodies and
// agrees with the token-based reference on them.
func TestScanShapeMatchesTokens(t *testing.T) {
	for _, known := range []map[string]map[string]bool{knownKeys, batchKnownKeys} {
		for _, body := range shapeSeeds {
			fast, decided := scanShape([]byte(body), known)
			ref := checkShapeTokens([]byte(body), known)
			if decided && !sameError(fast, ref) {
				t.Errorf("%s: fast %v, reference %v", body, fast, ref)
			}
		}
	}
	if _, decided := scanShape([]byte(shapeSeeds[0]), knownKeys); !decided {
		t.Error("a typical body fell back to the slow path")
	}
	if _, decided := scanShape([]byte(`{"a\u0063tion":"x","action":"y"}`), knownKeys); decided {
		t.Error("an escaped key was decided without unescaping")
	}
}

func sameError(a, b *Error) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.Field == b.Field && a.Message == b.Message && a.Code == b.Code
}

// FuzzShapeAgrees: on any well-formed JSON the fast scanner either defers
// or reports exactly what the reference reports, so it can never let a
// duplicate key or unknown field through that the reference would catch.
func FuzzShapeAgrees(f *testing.F) {
	for _, s := range shapeSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		fast, decided := scanShape(raw, knownKeys)
		if !decided || !json.Valid(raw) {
			return
		}
		if ref := checkShapeTokens(raw, knownKeys); !sameError(fast, ref) {
			t.Fatalf("%q: fast %v, reference %v", raw, fast, ref)
		}
	})
}
