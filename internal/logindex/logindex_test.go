package logindex

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/scopegate/scopegate/internal/decisionlog"
)

var t0 = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)

// writeLog writes n records across rotated files: subjects s0..s4, clients
// c0..c2, every third denied, a batch of three at the end (its later checks
// without the shared fields, as the server writes them).
func writeLog(t testing.TB, dir string, n int) (string, *decisionlog.Writer) {
	t.Helper()
	path := filepath.Join(dir, "decisions.log")
	w, err := decisionlog.Open(context.Background(), decisionlog.Options{Path: path, MaxBytes: 4000})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		logOne(t, w, i)
	}
	for c := range 3 {
		in := map[string]any{"action": "user:read", "batch": map[string]any{"id": "batch-0", "check": c, "checks": 3}}
		if c == 0 {
			in["granted_scopes"] = []any{"user:read", "project:read"}
			in["subject"] = "batcher"
		}
		ev := decisionlog.Event{DecisionID: fmt.Sprintf("batch-%d", c), Timestamp: t0.Add(time.Duration(n+c) * time.Minute),
			Path: "scopegate/authz/decision", Input: in, Result: map[string]any{"allow": true, "reason": "allowed"},
			Reason: "allowed", Subject: "batcher", Allow: true}
		if err := w.LogDurable(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
	}
	return path, w
}

func logOne(t testing.TB, w *decisionlog.Writer, i int) {
	t.Helper()
	allow := i%3 != 0
	reason := map[bool]string{true: "allowed", false: "missing_scope"}[allow]
	ev := decisionlog.Event{DecisionID: fmt.Sprintf("d-%06d", i), Timestamp: t0.Add(time.Duration(i) * time.Minute),
		Path:   "scopegate/authz/decision",
		Input:  map[string]any{"subject": fmt.Sprintf("s%d", i%5), "client_id": fmt.Sprintf("c%d", i%3), "granted_scopes": []any{"user:read", fmt.Sprintf("x:%d", i%7)}, "action": "user:read"},
		Result: map[string]any{"allow": allow, "reason": reason},
		Reason: reason, Subject: fmt.Sprintf("s%d", i%5), ClientID: fmt.Sprintf("c%d", i%3), Allow: allow}
	if err := w.LogDurable(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
}

// fromFiles is what reading every file answers: the reference.
func fromFiles(t *testing.T, path string, f decisionlog.Filter, limit int) []decisionlog.Event {
	t.Helper()
	files, _ := decisionlog.Files(path)
	all, err := decisionlog.QueryAll(files, f)
	if err != nil {
		t.Fatal(err)
	}
	slices.Reverse(all)
	return all[:min(limit, len(all))]
}

func ids(evs []decisionlog.Event) string {
	var s []string
	for _, ev := range evs {
		s = append(s, ev.DecisionID)
	}
	return strings.Join(s, " ")
}

// TestIndexAnswersAsTheFiles: for every filter the index answers what
// reading the files answers, newest first, across rotated files, with a
// batch check's shared fields filled in; new records are picked up.
func TestIndexAnswersAsTheFiles(t *testing.T) {
	path, w := writeLog(t, t.TempDir(), 120)
	defer w.Close(context.Background())
	ix := New(path)
	deny := false
	filters := []decisionlog.Filter{
		{}, {Subject: "s3"}, {ClientID: "c1"}, {Reason: "missing_scope"}, {Allow: &deny},
		{DecisionID: "d-000042"}, {Scope: "x:4"}, {Scope: "project:read"}, {Subject: "nobody"},
		{From: t0.Add(30 * time.Minute), To: t0.Add(60 * time.Minute)}, {Subject: "s1", ClientID: "c2", Reason: "allowed"},
	}
	check := func() {
		for _, f := range filters {
			for _, limit := range []int{1, 7, 1000} {
				got, err := ix.Newest(f, limit)
				if err != nil {
					t.Fatal(err)
				}
				if want := fromFiles(t, path, f, limit); ids(got) != ids(want) {
					t.Errorf("%+v limit %d:\n got %s\nwant %s", f, limit, ids(got), ids(want))
				}
			}
		}
	}
	check()
	files, _ := decisionlog.Files(path)
	if len(files) < 3 {
		t.Fatalf("the log did not rotate: %v", files)
	}
	got, _ := ix.Newest(decisionlog.Filter{DecisionID: "batch-2"}, 1)
	if len(got) != 1 || !slices.Contains(decisionlog.GrantedScopes(got[0]), "project:read") {
		t.Errorf("batch check without its shared fields: %+v", got)
	}
	for i := 120; i < 150; i++ {
		logOne(t, w, i)
	}
	check()
	rep, err := ix.Verify()
	files, _ = decisionlog.Files(path)
	want, werr := decisionlog.Verify(files)
	if err != nil || werr != nil || rep != want {
		t.Errorf("index verify %+v %v, files %+v %v", rep, err, want, werr)
	}
}

// TestIndexVerifyFindsTampering: an edited record is reported where the
// full verify reports it, whether the edit came before the index was built
// or after (the edit shifts the last indexed line, so the file is indexed
// afresh); a deleted rotated file is a chain that no longer starts at
// genesis.
func TestIndexVerifyFindsTampering(t *testing.T) {
	path, w := writeLog(t, t.TempDir(), 40)
	if err := w.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	ix := New(path)
	if _, err := ix.Verify(); err != nil {
		t.Fatal(err)
	}
	files, _ := decisionlog.Files(path)
	victim := files[1]
	b, _ := os.ReadFile(victim)
	lines := strings.SplitAfter(string(b), "\n")
	lines[1] = strings.Replace(lines[1], `"reason":"`, `"reason":"edited-`, 1)
	if err := os.WriteFile(victim, []byte(strings.Join(lines, "")), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := ix.Verify()
	_, want := decisionlog.Verify(files)
	ce, ok := err.(*decisionlog.ChainError)
	wce, _ := want.(*decisionlog.ChainError)
	if !ok || wce == nil || ce.File != wce.File || ce.Line != wce.Line || ce.Kind != wce.Kind {
		t.Fatalf("index: %v\nfiles: %v", err, want)
	}
	b2, _ := json.Marshal(ce)
	t.Logf("tampering found: %s", b2)
}
