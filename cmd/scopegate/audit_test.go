package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scopegate/scopegate/internal/decisionlog"
)

// runCLI runs the scopegate binary and returns its stdout, stderr and exit code.
func runCLI(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return o.String(), e.String(), code
}

var auditT0 = time.Date(2026, 11, 23, 18, 0, 0, 0, time.UTC)

// writeAuditLog writes n known decisions, 10 minutes apart, rotating every
// few records, and returns the active file's path.
func writeAuditLog(t *testing.T, dir string, n int) string {
	t.Helper()
	path := filepath.Join(dir, "decisions.log")
	w, err := decisionlog.Open(context.Background(), decisionlog.Options{Path: path, MaxBytes: 2500})
	if err != nil {
		t.Fatal(err)
	}
	subjects := []string{"app:translator-bot", "app:billing"}
	for i := range n {
		allow := i%3 == 0
		reason := map[bool]string{true: "allowed", false: "missing_scope"}[allow]
		scopes := []any{"project:write"}
		if i%2 == 1 {
			scopes = []any{"user:read", "project:read"}
		}
		ev := decisionlog.Event{
			DecisionID: fmt.Sprintf("d-%03d", i),
			Timestamp:  auditT0.Add(time.Duration(i) * 10 * time.Minute),
			Path:       "scopegate/authz/decision",
			Input:      map[string]any{"subject": subjects[i%2], "client_id": "abc", "granted_scopes": scopes, "action": "project:launch"},
			Result:     map[string]any{"allow": allow, "reason": reason},
			Reason:     reason,
			Subject:    subjects[i%2],
			ClientID:   "abc",
			Allow:      allow,
		}
		if err := w.LogDurable(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	return path
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.SplitAfter(string(b), "\n")[:strings.Count(string(b), "\n")]
}

func writeLines(t *testing.T, path string, lines []string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(strings.Join(lines, "")), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestAuditVerifyFindsTampering(t *testing.T) {
	for _, tc := range []struct {
		name   string
		tamper func(lines []string) []string
		kind   string
		line   int
	}{
		{"intact", func(l []string) []string { return l }, "", 0},
		{"edited", func(l []string) []string {
			l[2] = strings.Replace(l[2], `"client_id":"abc"`, `"client_id":"abd"`, 1)
			return l
		}, "hash_mismatch", 3},
		{"deleted", func(l []string) []string { return append(l[:2], l[3:]...) }, "broken_link", 3},
		{"reordered", func(l []string) []string {
			l[2], l[3] = l[3], l[2]
			return l
		}, "broken_link", 3},
		{"cut short", func(l []string) []string {
			last := len(l) - 1
			l[last] = l[last][:len(l[last])/2]
			return l
		}, "truncated", -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeAuditLog(t, t.TempDir(), 12)
			files, err := decisionlog.Files(path)
			if err != nil || len(files) < 3 {
				t.Fatalf("want a rotated log, got %v %v", files, err)
			}
			// Tamper with the second file, so that file:line must name it.
			target := files[1]
			if tc.line < 0 {
				target = files[len(files)-1]
			}
			lines := readLines(t, target)
			if len(lines) < 4 && tc.line > 0 {
				t.Fatalf("%s has %d lines", target, len(lines))
			}
			line := tc.line
			if line < 0 {
				line = len(lines)
			}
			writeLines(t, target, tc.tamper(lines))

			stdout, stderr, code := runCLI(t, "audit", "verify", "--decision-log", path)
			if tc.kind == "" {
				if code != 0 || !strings.Contains(stdout, "ok: 12 records in") || !strings.Contains(stdout, "starts the chain") {
					t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
				}
				return
			}
			want := fmt.Sprintf("%s:%d: %s", target, line, tc.kind)
			if code != 1 || !strings.Contains(stdout, "BROKEN: "+want) || !strings.Contains(stderr, want) {
				t.Fatalf("exit %d, want %q\nstdout:\n%s\nstderr:\n%s", code, want, stdout, stderr)
			}
		})
	}

	_, stderr, code := runCLI(t, "audit", "verify", "--decision-log", filepath.Join(t.TempDir(), "none.log"))
	if code != 2 || !strings.Contains(stderr, "no decision log at") {
		t.Fatalf("missing log: exit %d %s", code, stderr)
	}
}

func TestAuditQuery(t *testing.T) {
	path := writeAuditLog(t, t.TempDir(), 12)

	// Table: denied decisions of one subject in a time range.
	stdout, stderr, code := runCLI(t, "audit", "query", "--decision-log", path,
		"--subject", "app:billing", "--deny", "--from", "2026-11-23T18:15:00Z", "--to", "2026-11-23T19:45:00Z")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	want := strings.Join([]string{
		"TIME (UTC)           SUBJECT      CLIENT  ACTION          ALLOW  REASON         DECISION_ID",
		"2026-11-23 18:50:00  app:billing  abc     project:launch  false  missing_scope  d-005",
		"2026-11-23 19:10:00  app:billing  abc     project:launch  false  missing_scope  d-007",
		"2 decisions",
		"",
	}, "\n")
	if stdout != want {
		t.Fatalf("table:\n%s\nwant:\n%s", stdout, want)
	}

	// JSON lines: every field of the record, filtered by scope and reason.
	stdout, stderr, code = runCLI(t, "audit", "query", "--decision-log", path, "--scope", "user:read",
		"--reason", "allowed", "--output", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var ids []string
	for _, l := range strings.Split(strings.TrimSpace(stdout), "\n") {
		var ev decisionlog.Event
		if err := json.Unmarshal([]byte(l), &ev); err != nil {
			t.Fatalf("%v: %s", err, l)
		}
		if ev.Hash == "" || ev.Path != "scopegate/authz/decision" || !ev.Allow {
			t.Fatalf("record %+v", ev)
		}
		ids = append(ids, ev.DecisionID)
	}
	if fmt.Sprint(ids) != "[d-003 d-009]" {
		t.Fatalf("ids %v\n%s", ids, stdout)
	}

	stdout, _, _ = runCLI(t, "audit", "query", "--decision-log", path, "--allow", "--limit", "1", "-o", "json")
	if strings.Count(stdout, "\n") != 1 || !strings.Contains(stdout, `"decision_id":"d-000"`) {
		t.Fatalf("limit: %s", stdout)
	}
	for _, args := range [][]string{{"--allow", "--deny"}, {"--from", "yesterday"}, {"--output", "xml"}} {
		if _, stderr, code := runCLI(t, append([]string{"audit", "query", "--decision-log", path}, args...)...); code == 0 {
			t.Errorf("%v: exit 0 (%s)", args, stderr)
		}
	}
}

func TestAuditStats(t *testing.T) {
	path := writeAuditLog(t, t.TempDir(), 12)

	stdout, stderr, code := runCLI(t, "audit", "stats", "--decision-log", path, "--by", "reason")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	want := strings.Join([]string{
		"12 decisions: 4 allowed, 8 denied",
		"",
		"REASON         DECISIONS  SHARE",
		"missing_scope  8          66.7%",
		"allowed        4          33.3%",
		"",
	}, "\n")
	if stdout != want {
		t.Fatalf("table:\n%s\nwant:\n%s", stdout, want)
	}

	stdout, stderr, code = runCLI(t, "audit", "stats", "--decision-log", path, "--by", "scope", "--bucket", "1h")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	// 18:00-18:50 holds d-000..d-005: three with project:write, three with
	// user:read + project:read.
	for _, row := range []string{
		"FROM (UTC)        SCOPE          DECISIONS",
		"2026-11-23 18:00  project:read   3",
		"2026-11-23 18:00  project:write  3",
		"2026-11-23 19:00  user:read      3",
	} {
		if !strings.Contains(stdout, row+"\n") {
			t.Fatalf("missing row %q in:\n%s", row, stdout)
		}
	}

	stdout, stderr, code = runCLI(t, "audit", "stats", "--decision-log", path, "--by", "subject", "--bucket", "1h", "--deny", "-o", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var js struct {
		Records, Allowed, Denied int
		By                       string
		Counts                   map[string]int
		Buckets                  []struct {
			Start  time.Time
			Denied int
			Counts map[string]int
		}
	}
	if err := json.Unmarshal([]byte(stdout), &js); err != nil {
		t.Fatalf("%v\n%s", err, stdout)
	}
	if js.Records != 8 || js.Allowed != 0 || js.By != "subject" || js.Counts["app:billing"] != 4 || js.Counts["app:translator-bot"] != 4 ||
		len(js.Buckets) != 2 || !js.Buckets[0].Start.Equal(auditT0) || js.Buckets[0].Denied != 4 || js.Buckets[0].Counts["app:billing"] != 2 {
		t.Fatalf("json: %+v\n%s", js, stdout)
	}
	if _, _, code := runCLI(t, "audit", "stats", "--decision-log", path, "--by", "client"); code == 0 {
		t.Error("--by client accepted")
	}
}
