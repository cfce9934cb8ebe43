package main

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestAuditAdvise(t *testing.T) {
	dir := t.TempDir()
	srv := startServe(t, dir)
	postDecisions(t, srv.url, "", uiDecisions)
	postDecisions(t, srv.url, "", []string{`{"subject":"nobody","granted_scopes":["user:read"],"action":"user:read"}`})
	logPath := filepath.Join(dir, "decisions.log")

	stdout, stderr, code := runCLI(t, "audit", "advise", "--decision-log", logPath, "--catalog", repoPath("scopes.yaml"))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{
		"9 decisions from", "2 clients", "1 decisions without a client_id not attributed",
		"CLIENT", "NEEDED (REQUEST THIS)",
		"translator-bot", `request "project:write" instead`, "project:manage (full access) was only used for",
		"never used: user:email", "profile-widget", "drop user:delete: not in the catalog",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("table output lacks %q:\n%s", want, stdout)
		}
	}

	// JSON, one client, the catalog from the bundle's generated data.
	stdout, stderr, code = runCLI(t, "audit", "advise", "--decision-log", logPath, "--catalog", repoPath("bundles/scopegate/data.json"),
		"--client", "translator-bot", "-o", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var r struct {
		Records int `json:"records"`
		Clients []struct {
			ClientID    string   `json:"client_id"`
			Granted     []string `json:"granted"`
			Needed      []string `json:"needed"`
			Recommended string   `json:"recommended"`
			Unused      []string `json:"unused"`
			Allowed     int      `json:"allowed"`
			Denied      int      `json:"denied"`
		} `json:"clients"`
	}
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatalf("%v:\n%s", err, stdout)
	}
	if r.Records != 4 || len(r.Clients) != 1 {
		t.Fatalf("%+v", r)
	}
	c := r.Clients[0]
	if c.ClientID != "translator-bot" || c.Recommended != "project:write" || !slices.Equal(c.Needed, []string{"project:write"}) ||
		!slices.Equal(c.Granted, []string{"project:manage", "user:email"}) || !slices.Equal(c.Unused, []string{"user:email"}) ||
		c.Allowed != 3 || c.Denied != 1 {
		t.Errorf("%+v", c)
	}

	// An empty period, and bad flags.
	stdout, _, code = runCLI(t, "audit", "advise", "--decision-log", logPath, "--catalog", repoPath("scopes.yaml"), "--to", "2000-01-01")
	if code != 0 || !strings.Contains(stdout, "no decisions in this period") {
		t.Errorf("empty period: %d %s", code, stdout)
	}
	for _, args := range [][]string{
		{"--from", "someday"},
		{"-o", "yaml"},
		{"--catalog", filepath.Join(dir, "missing.yaml")},
		{"--decision-log", filepath.Join(dir, "none.log")},
	} {
		all := append([]string{"audit", "advise", "--decision-log", logPath, "--catalog", repoPath("scopes.yaml")}, args...)
		if _, stderr, code := runCLI(t, all...); code == 0 || stderr == "" {
			t.Errorf("%v: exit %d, stderr %q", args, code, stderr)
		}
	}
}
