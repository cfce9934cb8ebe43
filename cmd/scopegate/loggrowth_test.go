package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/scopegate/scopegate/internal/decisionlog"
)

// TestOneRequestBoundedOnDisk: no single request grows the decision log by
// more than 4x its body, or 4 KiB per decision, whichever is larger, however
// it is shaped: a batch sharing a large context, explain=full on a large
// body, long unknown scopes echoed in the result, a long action. It prints
// each request's growth (go test -run TestOneRequestBoundedOnDisk -v
// ./cmd/scopegate/).
func TestOneRequestBoundedOnDisk(t *testing.T) {
	dir := t.TempDir()
	logPath := filepath.Join(dir, "decisions.log")
	srv := startServe(t, dir, "--decision-log", logPath)

	longScopes := make([]string, 256)
	for i := range longScopes {
		longScopes[i] = fmt.Sprintf("%s:%03d", strings.Repeat("x", 120), i)
	}
	scopeList := `["` + strings.Join(longScopes, `","`) + `"]`
	checks := func(n int, check string) string {
		return "[" + strings.TrimSuffix(strings.Repeat(check+",", n), ",") + "]"
	}
	for _, tc := range []struct {
		name, path, body string
		decisions        int
	}{
		{"batch of 100 allowed checks sharing a 225 KB context", "/v1/decide/batch",
			`{"subject":"app:a","scope":"project:manage user:read","context":{"blob":"` + strings.Repeat("c", 225<<10) + `"},"checks":` +
				checks(100, `{"action":"project:read"}`) + `}`, 100},
		{"explain=full on a 61 KB body", "/v1/decide?explain=full",
			`{"subject":"app:a","granted_scopes":["user:read"],"action":"user:read","context":{"blob":"` + strings.Repeat("e", 60<<10) + `"}}`, 1},
		{"batch of 100 checks, 256 long unknown scopes", "/v1/decide/batch",
			`{"subject":"app:a","granted_scopes":` + scopeList + `,"checks":` + checks(100, `{"action":"user:read"}`) + `}`, 100},
		{"256 long unknown scopes, requested too", "/v1/decide",
			`{"subject":"app:a","granted_scopes":` + scopeList + `,"requested_scopes":["` + strings.Join(longScopes[:128], `","`) + `"],"action":"user:read"}`, 1},
		{"a long unknown action", "/v1/decide",
			`{"subject":"app:a","granted_scopes":["user:read"],"action":"` + strings.Repeat("a", 256) + `"}`, 1},
		{"an ordinary question", "/v1/decide",
			`{"subject":"app:a","granted_scopes":["user:read","project:write"],"action":"project:launch"}`, 1},
	} {
		before := logBytes(t, logPath)
		resp, err := http.Post(srv.url+tc.path, "application/json", strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		answer, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %.300s", tc.name, resp.StatusCode, answer)
		}
		grew := logBytes(t, logPath) - before
		limit := max(4*int64(len(tc.body)), 4096*int64(tc.decisions))
		t.Logf("%-55s body %7d B, log +%8d B (%5.2fx body, %6d B per decision), limit %8d B",
			tc.name, len(tc.body), grew, float64(grew)/float64(len(tc.body)), grew/int64(tc.decisions), limit)
		if grew > limit {
			t.Errorf("%s: the log grew %d bytes, more than %d", tc.name, grew, limit)
		}
	}
	srv.stop(t)
	files, err := decisionlog.Files(logPath)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := decisionlog.Verify(files); err != nil {
		t.Fatalf("the chain does not verify: %v", err)
	}
	// A batch check's record reads whole: its shared fields are filled in
	// from the batch's first record.
	evs, err := decisionlog.QueryAll(files, decisionlog.Filter{Scope: "project:manage"})
	if err != nil || len(evs) != 100 {
		t.Fatalf("query by a granted scope of the batch: %d records, %v", len(evs), err)
	}
}

// logBytes is the size of the log and its rotated files.
func logBytes(t *testing.T, path string) int64 {
	t.Helper()
	files, err := decisionlog.Files(path)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		n += fi.Size()
	}
	return n
}

// TestServeWarnsOnLowDisk: below --decision-log-min-free the server warns
// in its own log and in a metric, and keeps deciding (it fails closed only
// once the log cannot be written).
func TestServeWarnsOnLowDisk(t *testing.T) {
	dir := t.TempDir()
	srv := startServe(t, dir, "--decision-log", filepath.Join(dir, "decisions.log"), "--decision-log-min-free", "1000000GiB")
	if status, d := srv.decide(t, `{"granted_scopes":["user:read"],"action":"user:read"}`); status != 200 || d["allow"] != true {
		t.Fatalf("decision on a low disk: %d %v", status, d)
	}
	resp, err := http.Get(srv.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(metrics), "scopegate_decision_log_disk_low 1") || !strings.Contains(string(metrics), "scopegate_decision_log_disk_free_bytes ") {
		t.Errorf("metrics do not show the low disk:\n%s", metrics)
	}
	srv.stop(t)
	if !strings.Contains(srv.stderr.String(), "decision log disk is low on space") {
		t.Errorf("no warning in the operator log:\n%s", srv.stderr)
	}
}
