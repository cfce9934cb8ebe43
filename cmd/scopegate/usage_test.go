package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestAuditTakesTheLogAsArgument: every audit command reads the log named
// as its argument, as people type it.
func TestAuditTakesTheLogAsArgument(t *testing.T) {
	dir := t.TempDir()
	path := writeAuditLog(t, dir, 6)
	for _, args := range [][]string{
		{"audit", "verify", path},
		{"audit", "query", path},
		{"audit", "stats", path},
		{"audit", "advise", path, "--catalog", repoPath("scopes.yaml")},
		{"audit", "verify", "--decision-log", path, path}, // the same log twice is no contradiction
	} {
		out, errOut, code := runCLI(t, args...)
		if code != 0 {
			t.Errorf("%v: exit %d: %s%s", args, code, out, errOut)
		}
	}
	out, _, _ := runCLI(t, "audit", "verify", path)
	if !strings.Contains(out, "ok: 6 records") {
		t.Errorf("verify LOG: %s", out)
	}
	out, _, _ = runCLI(t, "audit", "query", path, "--output", "json")
	if strings.Count(out, "\n") != 6 {
		t.Errorf("query LOG --output json: want 6 records, got %s", out)
	}
	_, errOut, code := runCLI(t, "audit", "verify", "--decision-log", filepath.Join(dir, "other.log"), path)
	if code != 2 || !strings.Contains(errOut, "not both") {
		t.Errorf("argument and another --decision-log: exit %d: %s", code, errOut)
	}
}

// TestUsageErrorsExitTwo: a typo on the command line exits 2, never 1
// (a broken chain, for audit verify) nor 0 (help).
func TestUsageErrorsExitTwo(t *testing.T) {
	dir := t.TempDir()
	path := writeAuditLog(t, dir, 3)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"audit", "verfy", path}, `unknown command "verfy" for "scopegate audit" (did you mean verify?)`},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"audit", "verify", path, path}, "accepts at most 1 arg"},
		{[]string{"audit", "verify", "--bogus", path}, "unknown flag: --bogus"},
		{[]string{"audit", "query", path, "--output", "yaml"}, `--output "yaml"`},
		{[]string{"audit", "query", path, "--allow", "--deny"}, "not both"},
		{[]string{"audit", "query", path, "--from", "yesterday"}, "--from"},
		{[]string{"audit", "query", path, "--limit", "x"}, "--limit"},
		{[]string{"audit", "stats", path, "--by", "colour"}, "--by"},
		{[]string{"audit", "advise", path, "--to", "soon"}, "--to"},
		{[]string{"decide", "--scopes", "user:read", "--action", "user:read", "extra"}, `unknown command "extra"`},
		{[]string{"scopes", "show"}, "accepts 1 arg"},
	} {
		_, errOut, code := runCLI(t, tc.args...)
		if code != 2 || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d, want 2 with %q: %s", tc.args, code, tc.want, errOut)
		}
	}
	// A group with no subcommand still prints its help, successfully.
	if out, _, code := runCLI(t, "audit"); code != 0 || !strings.Contains(out, "Available Commands") {
		t.Errorf("audit alone: exit %d: %s", code, out)
	}
}

// TestDecideExplainWithASpace: --explain full means --explain=full.
func TestDecideExplainWithASpace(t *testing.T) {
	base := []string{"decide", "--catalog", repoPath("scopes.yaml"), "--policies", repoPath("policies"),
		"--scopes", "project:manage", "--action", "project:launch"}
	spaced, _, code := runCLI(t, append(base, "--explain", "full")...)
	if code != 0 {
		t.Fatalf("--explain full: exit %d: %s", code, spaced)
	}
	joined, _, _ := runCLI(t, append(base, "--explain=full")...)
	notes, _, _ := runCLI(t, append(base, "--explain")...)
	if !strings.Contains(spaced, "Redo") || len(spaced) != len(joined) || len(notes) >= len(joined) {
		t.Errorf("--explain full (%d bytes) should print the trace as --explain=full (%d) does, more than --explain (%d):\n%s",
			len(spaced), len(joined), len(notes), spaced)
	}
	if _, errOut, code := runCLI(t, append(base, "--explain", "fuller")...); code != 2 {
		t.Errorf("--explain fuller: exit %d: %s", code, errOut)
	}
}
