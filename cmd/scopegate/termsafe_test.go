package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scopegate/scopegate/internal/decisionlog"
)

// TestAuditOutputCannotDriveTheTerminal: a subject and client id holding a
// C1 control (CSI, U+009B), an ANSI escape and a right-to-left override
// are escaped by audit query, stats and advise, not written raw.
func TestAuditOutputCannotDriveTheTerminal(t *testing.T) {
	const hostile = "app:\u009b31m\x1b[2J\u202eevil"
	path := filepath.Join(t.TempDir(), "decisions.log")
	w, err := decisionlog.Open(context.Background(), decisionlog.Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	ev := decisionlog.Event{DecisionID: "d-1", Timestamp: time.Now(), Path: "scopegate/authz/decision",
		Input:  map[string]any{"subject": hostile, "client_id": hostile, "granted_scopes": []any{"user:read"}, "action": "user:read"},
		Result: map[string]any{"allow": true, "reason": "allowed", "required_any_of": []any{"user:read"}},
		Reason: "allowed", Subject: hostile, ClientID: hostile, Allow: true}
	if err := w.LogDurable(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"audit", "query", path},
		{"audit", "stats", path, "--by", "subject"},
		{"audit", "advise", path, "--catalog", repoPath("scopes.yaml")},
	} {
		out, errOut, code := runCLI(t, args...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, errOut)
		}
		for _, raw := range []string{"\u009b", "\x1b", "\u202e"} {
			if strings.Contains(out, raw) {
				t.Errorf("%v printed %q raw:\n%q", args, raw, out)
			}
		}
		if !bytes.Contains([]byte(out), []byte(`app:\u{009B}31m\u{001B}[2J\u{202E}evil`)) {
			t.Errorf("%v: no escaped subject in:\n%s", args, out)
		}
	}
}
