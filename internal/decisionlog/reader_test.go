package decisionlog

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// threeFiles logs 12 records into three files of 4 (rotation by age) and
// returns the files' lines.
func threeFiles(t *testing.T) [][][]byte {
	t.Helper()
	path := logPath(t)
	clock := newFakeClock(t0)
	w := openT(t, Options{Path: path, MaxAge: time.Hour, Clock: clock.Now})
	for i := range 12 {
		if i > 0 && i%4 == 0 {
			clock.Add(time.Hour)
		}
		logRange(t, w, i, i+1)
	}
	closeT(t, w)
	files := mustFiles(t, path)
	if len(files) != 3 {
		t.Fatalf("setup: %d files", len(files))
	}
	var out [][][]byte
	for _, f := range files {
		out = append(out, lines(t, f))
	}
	return out
}

// writeFiles writes files f0.log, f1.log, ... and returns their paths.
func writeFiles(t *testing.T, files [][][]byte) []string {
	t.Helper()
	dir := t.TempDir()
	var paths []string
	for i, ls := range files {
		p := filepath.Join(dir, "f"+string(rune('0'+i))+".log")
		if err := os.WriteFile(p, bytes.Join(ls, nil), 0o600); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	return paths
}

// rehash rewrites a line with a correct hash for its (edited) content, as an
// attacker who knows the scheme would, and with its members in another order.
func rehash(t *testing.T, line []byte) []byte {
	t.Helper()
	var doc map[string]any
	if err := decodeStrict(bytes.TrimSpace(line), &doc); err != nil {
		t.Fatal(err)
	}
	delete(doc, "hash")
	canon, err := appendCanonical(nil, doc)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(canon)
	doc["hash"] = hex.EncodeToString(sum[:])
	b, err := json.Marshal(doc) // encoding/json: HTML escaping, hash not last
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

func TestVerify(t *testing.T) {
	orig := threeFiles(t)
	clone := func() [][][]byte {
		c := make([][][]byte, len(orig))
		for i := range orig {
			c[i] = slices.Clone(orig[i])
		}
		return c
	}
	// edit replaces old by new in line; an edit that does not apply leaves
	// the line intact, which the "want an error" cases then catch.
	edit := func(line []byte, old, new string) []byte {
		return bytes.Replace(line, []byte(old), []byte(new), 1)
	}
	tests := []struct {
		name     string
		tamper   func(t *testing.T, f [][][]byte) [][][]byte
		wantFile int // index into the written files; -1 for no error
		wantLine int
		wantKind Kind
		genesis  bool
	}{
		{"untouched", func(t *testing.T, f [][][]byte) [][][]byte { return f }, -1, 0, "", true},
		{"edited decision", func(t *testing.T, f [][][]byte) [][][]byte {
			f[1][1] = edit(f[1][1], `"reason":"unknown_scope"`, `"reason":"allowed"`)
			return f
		}, 1, 2, KindHashMismatch, true},
		{"edited prev_hash", func(t *testing.T, f [][][]byte) [][][]byte {
			i := bytes.Index(f[0][2], []byte(`"prev_hash":"`)) + len(`"prev_hash":"`)
			f[0][2] = slices.Clone(f[0][2])
			copy(f[0][2][i:], strings.Repeat("a", 64))
			return f
		}, 0, 3, KindHashMismatch, true},
		{"deleted record", func(t *testing.T, f [][][]byte) [][][]byte {
			f[1] = slices.Delete(f[1], 2, 3)
			return f
		}, 1, 3, KindBrokenLink, true},
		{"reordered pair", func(t *testing.T, f [][][]byte) [][][]byte {
			f[0][1], f[0][2] = f[0][2], f[0][1]
			return f
		}, 0, 2, KindBrokenLink, true},
		{"deleted first record of a rotated file", func(t *testing.T, f [][][]byte) [][][]byte {
			f[2] = f[2][1:]
			return f
		}, 2, 1, KindBrokenLink, true},
		{"deleted last record of a file", func(t *testing.T, f [][][]byte) [][][]byte {
			f[0] = f[0][:3]
			return f
		}, 1, 1, KindBrokenLink, true},
		{"missing middle file", func(t *testing.T, f [][][]byte) [][][]byte {
			return [][][]byte{f[0], f[2]}
		}, 1, 1, KindBrokenLink, true},
		{"inserted copy of a record", func(t *testing.T, f [][][]byte) [][][]byte {
			f[1] = slices.Insert(f[1], 2, f[1][1])
			return f
		}, 1, 3, KindBrokenLink, true},
		{"truncated last line", func(t *testing.T, f [][][]byte) [][][]byte {
			last := f[2][3]
			f[2][3] = last[:len(last)/2]
			return f
		}, 2, 4, KindTruncated, true},
		{"newline stripped from a complete last line", func(t *testing.T, f [][][]byte) [][][]byte {
			f[2][3] = bytes.TrimSuffix(f[2][3], []byte{'\n'})
			return f
		}, 2, 4, KindTruncated, true},
		{"not JSON", func(t *testing.T, f [][][]byte) [][][]byte {
			f[0][0] = []byte("hello auditor\n")
			return f
		}, 0, 1, KindMalformed, true},
		{"blank line", func(t *testing.T, f [][][]byte) [][][]byte {
			f[1] = slices.Insert(f[1], 1, []byte("\n"))
			return f
		}, 1, 2, KindMalformed, true},
		{"hash field removed", func(t *testing.T, f [][][]byte) [][][]byte {
			var doc map[string]any
			_ = decodeStrict(bytes.TrimSpace(f[0][1]), &doc)
			delete(doc, "hash")
			b, _ := json.Marshal(doc)
			f[0][1] = append(b, '\n')
			return f
		}, 0, 2, KindMalformed, true},
		{"edited and re-hashed: caught at the next record", func(t *testing.T, f [][][]byte) [][][]byte {
			f[0][1] = rehash(t, edit(f[0][1], `"reason":"missing_scope"`, `"reason":"allowed"`))
			return f
		}, 0, 3, KindBrokenLink, true},
		{"reformatted but unchanged content still verifies", func(t *testing.T, f [][][]byte) [][][]byte {
			f[1][1] = rehash(t, f[1][1])
			if bytes.Equal(f[1][1], orig[1][1]) {
				t.Fatal("setup: rehash did not change the bytes")
			}
			return f
		}, -1, 0, "", true},
		{"deleted oldest records (retention)", func(t *testing.T, f [][][]byte) [][][]byte {
			return f[1:]
		}, -1, 0, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := writeFiles(t, tt.tamper(t, clone()))
			rep, err := Verify(files)
			if tt.wantFile < 0 {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if rep.StartsAtGenesis() != tt.genesis || rep.Files != len(files) || rep.Records != countLines(t, files) {
					t.Errorf("report = %+v", rep)
				}
				return
			}
			var ce *ChainError
			if !errors.As(err, &ce) {
				t.Fatalf("Verify = %v, want a *ChainError", err)
			}
			if ce.File != files[tt.wantFile] || ce.Line != tt.wantLine || ce.Kind != tt.wantKind {
				t.Errorf("got %v\nwant %s:%d: %s", ce, files[tt.wantFile], tt.wantLine, tt.wantKind)
			}
			if want := 4*tt.wantFile + tt.wantLine - 1; tt.name == "reordered pair" && rep.Records != want {
				t.Errorf("report counts %d records before the break, want %d", rep.Records, want)
			}
		})
	}
}

func TestVerifyIOError(t *testing.T) {
	_, err := Verify([]string{filepath.Join(t.TempDir(), "missing.log")})
	var ce *ChainError
	if err == nil || errors.As(err, &ce) {
		t.Errorf("Verify(missing) = %v, want an I/O error", err)
	}
}

func TestFilesOrder(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{
		"decisions-20261124T000000.000Z.log",
		"decisions-20261123T180501.123Z.log",
		"decisions-20261123T180501.122Z.log",
		"decisions.log",
		"decisions.log.lock",
		"decisions-old.log",
		"other-20261123T180501.123Z.log",
		"decisions-20261123T180501.123Z.log.gz",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	got, err := Files(filepath.Join(dir, "decisions.log"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range got {
		names = append(names, filepath.Base(p))
	}
	want := []string{
		"decisions-20261123T180501.122Z.log",
		"decisions-20261123T180501.123Z.log",
		"decisions-20261124T000000.000Z.log",
		"decisions.log",
	}
	if !slices.Equal(names, want) {
		t.Errorf("Files = %v, want %v", names, want)
	}
	if _, err := Files("-"); err == nil {
		t.Error(`Files("-") succeeded`)
	}
}

// queryLog logs records 0..29: subject, reason and scopes cycle with i%3,
// allow is i%3 == 0, client_id is c(i%2), timestamps are t0 + i minutes.
func queryLog(t *testing.T) []string {
	t.Helper()
	path := logPath(t)
	w := openT(t, Options{Path: path, MaxBytes: 3000})
	logRange(t, w, 0, 30)
	closeT(t, w)
	return mustFiles(t, path)
}

func TestQuery(t *testing.T) {
	files := queryLog(t)
	yes, no := true, false
	ids := func(is ...int) []string {
		var out []string
		for _, i := range is {
			out = append(out, wantIDs(i, i+1)...)
		}
		return out
	}
	tests := []struct {
		name string
		f    Filter
		want []string
	}{
		{"all", Filter{}, wantIDs(0, 30)},
		{"limit", Filter{Limit: 2}, ids(0, 1)},
		{"subject", Filter{Subject: "app:billing", Limit: 3}, ids(1, 4, 7)},
		{"client and reason", Filter{ClientID: "c0", Reason: "missing_scope"}, ids(4, 10, 16, 22, 28)},
		{"scope", Filter{Scope: "project:write", To: t0.Add(10 * time.Minute)}, ids(1, 4, 7)},
		{"scope shared by two subjects", Filter{Scope: "user:read", From: t0.Add(24 * time.Minute)}, ids(24, 25, 27, 28)},
		{"allowed", Filter{Allow: &yes, From: t0.Add(20 * time.Minute)}, ids(21, 24, 27)},
		{"denied in range", Filter{Allow: &no, From: t0.Add(3 * time.Minute), To: t0.Add(6 * time.Minute)}, ids(4, 5)},
		{"no match", Filter{Subject: "nobody"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			evs, err := QueryAll(files, tt.f)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, ev := range evs {
				got = append(got, ev.DecisionID)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %v\nwant %v", got, tt.want)
			}
		})
	}

	// Breaking out of the iterator early is fine.
	n := 0
	for _, err := range Query(files, Filter{}) {
		if err != nil {
			t.Fatal(err)
		}
		if n++; n == 3 {
			break
		}
	}

	// A damaged line ends the query with file:line.
	bad := append(lines(t, files[0]), []byte("{not json\n"))
	p := writeFiles(t, [][][]byte{bad})
	_, err := QueryAll(p, Filter{})
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte(p[0]+":"+strconv.Itoa(len(bad))+":")) {
		t.Errorf("QueryAll(damaged) = %v", err)
	}
}

func TestGrantedScopesFromScopeString(t *testing.T) {
	ev := Event{Input: map[string]any{"scope": "user:read  project:write user:read"}}
	if got := GrantedScopes(ev); !slices.Equal(got, []string{"project:write", "user:read"}) {
		t.Errorf("GrantedScopes = %v", got)
	}
}

func TestStats(t *testing.T) {
	files := queryLog(t)
	s, err := Stats(files, Filter{}, 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if s.Records != 30 || s.Allowed != 10 || s.Denied != 20 {
		t.Errorf("totals = %d/%d/%d", s.Records, s.Allowed, s.Denied)
	}
	wantReasons := map[string]int{"allowed": 10, "missing_scope": 10, "unknown_scope": 10}
	if !maps.Equal(s.ByReason, wantReasons) {
		t.Errorf("ByReason = %v", s.ByReason)
	}
	wantSubjects := map[string]int{"app:translator-bot": 10, "app:billing": 10, "user:u1": 10}
	if !maps.Equal(s.BySubject, wantSubjects) {
		t.Errorf("BySubject = %v", s.BySubject)
	}
	wantScopes := map[string]int{"user:read": 20, "project:write": 10, "project:manage": 10}
	if !maps.Equal(s.ByScope, wantScopes) {
		t.Errorf("ByScope = %v", s.ByScope)
	}
	wantBuckets := []Bucket{
		{Start: t0, Allowed: 4, Denied: 6}, // 0,3,6,9 allowed
		{Start: t0.Add(10 * time.Minute), Allowed: 3, Denied: 7},
		{Start: t0.Add(20 * time.Minute), Allowed: 3, Denied: 7},
	}
	if !slices.EqualFunc(s.Buckets, wantBuckets, func(a, b Bucket) bool {
		return a.Start.Equal(b.Start) && a.Allowed == b.Allowed && a.Denied == b.Denied
	}) {
		t.Errorf("Buckets = %+v", s.Buckets)
	}
	// Records 0-9: reasons cycle allowed, missing_scope, unknown_scope.
	if b := s.Buckets[0]; !maps.Equal(b.ByReason, map[string]int{"allowed": 4, "missing_scope": 3, "unknown_scope": 3}) ||
		b.BySubject["app:translator-bot"] != 4 || b.ByScope["user:read"] != 7 {
		t.Errorf("first bucket = %+v", b)
	}

	yes := true
	s, err = Stats(files, Filter{Subject: "app:translator-bot", Allow: &yes}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if s.Records != 10 || s.Denied != 0 || len(s.Buckets) != 0 || s.ByReason["allowed"] != 10 || len(s.BySubject) != 1 {
		t.Errorf("filtered stats = %+v", s)
	}
}
