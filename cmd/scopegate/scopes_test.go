package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// cli runs the scopegate binary in the repo root with stdin, and returns
// stdout, stderr and the exit code.
func cli(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Dir = repoPath("")
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return stdout.String(), stderr.String(), code
}

func TestDecideCommand(t *testing.T) {
	req := filepath.Join(t.TempDir(), "req.json")
	if err := os.WriteFile(req, []byte(`{"granted_scopes":["project:manage"],"method":"POST","path":"/projects/42/launch"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, stdin string
		args        []string
		code        int
		out         []string // substrings of stdout
		errOut      string   // substring of stderr
	}{
		{"allow", "", []string{"--scopes", "project:manage", "--action", "project:launch"}, 0,
			[]string{"allow: action project:launch, sensitive\n", "matched:                   project:manage"}, ""},
		{"deny", "", []string{"--scopes", "user:read project:write", "--action", "project:launch"}, 3,
			[]string{"deny (missing_scope): action project:launch, sensitive", "missing:                   project:launch", "remedy:"}, "denied (missing_scope)"},
		{"route with explain", "", []string{"--scopes", "project:manage", "--method", "post", "--path", "/projects/42/launch", "--explain"}, 0,
			[]string{"(route POST /projects/{id}/launch)", "  why:\n    - route POST /projects/{id}/launch matches action project.launch"}, ""},
		{"full trace", "", []string{"--scopes", "user:read", "--action", "user:read", "--explain=full"}, 0,
			[]string{"  trace:\n", "data.scopegate.authz.decision"}, ""},
		{"narrowed by the user", "", []string{"--scopes", "project:write", "--requested", "project:manage", "--action", "project:launch"}, 3,
			[]string{"requested, not granted:    project:manage (the user granted less than requested: that is why)", "the user did not grant project:manage"}, ""},
		{"no scopes is public", "", []string{"--action", "catalog.read"}, 0, []string{"allow: action catalog.read"}, ""},
		{"input file", "", []string{"--input", req}, 0, []string{"allow: action project.launch"}, ""},
		{"input stdin", `{"scope":"user:read","action":"user:email"}`, []string{"--input", "-"}, 3, []string{"deny (missing_scope)"}, ""},
		{"marketplace", "", []string{"--catalog", "examples/marketplace/scopes.yaml", "--policies", "examples/marketplace/policies",
			"--scopes", "licenses:verify", "--method", "POST", "--path", "/licenses/verify"}, 0, []string{"allow: action license.verify"}, ""},
		{"unknown scope", "", []string{"--scopes", "project:manage project:nuke", "--action", "project:read"}, 3, []string{"unknown scopes:            project:nuke"}, ""},

		{"malformed scopes", "", []string{"--scopes", "a  b", "--action", "x"}, 2, nil, "--scopes: malformed scope string"},
		{"action and route", "", []string{"--action", "x", "--method", "GET", "--path", "/x"}, 2, nil, "--action: give an action or a method and path, not both"},
		{"nothing to decide", "", []string{"--scopes", "user:read"}, 2, nil, "--action: missing"},
		{"bad path", "", []string{"--method", "GET", "--path", "me"}, 2, nil, "--path: must start with /"},
		{"input and flags", "", []string{"--input", req, "--action", "x"}, 2, nil, "give --input or --action, not both"},
		{"bad input body", `{"action":"x","extra":1}`, []string{"--input", "-"}, 2, nil, "invalid input: extra: unknown field"},
		{"bad explain", "", []string{"--action", "public", "--explain=loud"}, 2, nil, "--explain must be notes or full"},
		{"bundle and catalog", "", []string{"--action", "public", "--bundle", "x", "--catalog", "scopes.yaml"}, 2, nil, "give --bundle or --catalog/--policies, not both"},
		{"missing policies", "", []string{"--action", "public", "--policies", "nope"}, 2, nil, "no .rego files in nope"},
		{"unknown flag", "", []string{"--scope", "user:read"}, 2, nil, "unknown flag: --scope"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, code := cli(t, tc.stdin, append([]string{"decide"}, tc.args...)...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, out, errOut)
			}
			for _, want := range tc.out {
				if !strings.Contains(out, want) {
					t.Errorf("stdout lacks %q:\n%s", want, out)
				}
			}
			if !strings.Contains(errOut, tc.errOut) {
				t.Errorf("stderr lacks %q:\n%s", tc.errOut, errOut)
			}
		})
	}
}

func TestDecideCommandJSON(t *testing.T) {
	out, _, code := cli(t, "", "decide", "--json", "--scopes", "project:write user:read", "--requested", "project:manage user:read user:email", "--action", "project:launch")
	if code != 3 {
		t.Fatalf("exit %d: %s", code, out)
	}
	var d struct {
		Allow               bool     `json:"allow"`
		Reason              string   `json:"reason"`
		Missing             []string `json:"missing"`
		RequestedNotGranted []string `json:"requested_not_granted"`
		NarrowedByUser      bool     `json:"narrowed_by_user"`
		BundleRevision      string   `json:"bundle_revision"`
		Policy              string   `json:"policy"`
		Explain             []string `json:"explain"`
	}
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	if d.Allow || d.Reason != "missing_scope" || !d.NarrowedByUser || strings.Join(d.RequestedNotGranted, " ") != "project:manage user:email" ||
		!strings.HasPrefix(d.BundleRevision, "sha256-") || d.Policy != "data.scopegate.authz" || len(d.Explain) < 3 {
		t.Fatalf("got %+v", d)
	}
}

func TestScopesCommand(t *testing.T) {
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		out    []string
		errOut string
	}{
		{"list", []string{"scopes"}, 0, []string{"SCOPE", "public (default)", "user:manage", "user:read user:write user:email", "project:launch", "yes"}, ""},
		{"list subcommand filtered", []string{"scopes", "list", "--resource", "glossary"}, 0, []string{"glossary:manage", "glossary:write"}, ""},
		{"show", []string{"scopes", "show", "user:read"}, 0, []string{"user:read\n  Read-only access", "included by:  user:manage, user:write", "satisfied by: user:read, user:write, user:manage"}, ""},
		{"show sensitive", []string{"scopes", "show", "project:launch"}, 0, []string{"project:launch (sensitive)"}, ""},
		{"show unknown", []string{"scopes", "show", "project:lunch"}, 2, nil, `no scope "project:lunch" in the catalog (did you mean "project:launch"?)`},
		{"normalize", []string{"scopes", "normalize", "project:manage project:read user:read"}, 0,
			[]string{"minimal:    project:manage user:read", "redundant:  project:read (granted by project:manage)", "over-broad: project:manage", "sensitive:  project:launch (via project:manage)", "hints:\n  - "}, ""},
		{"normalize several arguments", []string{"scopes", "normalize", "user:write", "user:read"}, 0, []string{"minimal:    user:write\n"}, ""},
		{"normalize unknown", []string{"scopes", "normalize", "user:read usr:email"}, 3, []string{"unknown:    usr:email (did you mean user:email?)"}, "1 requested scope(s) not in the catalog"},
		{"normalize empty", []string{"scopes", "normalize", ""}, 0, []string{"grants:     public (the default scope)"}, ""},
		{"normalize malformed", []string{"scopes", "normalize", "a  b"}, 2, nil, "malformed scope string"},
		{"normalize nothing", []string{"scopes", "normalize"}, 2, nil, "requires at least 1 arg"},
		{"marketplace", []string{"scopes", "--catalog", "examples/marketplace/scopes.yaml", "list", "--sensitive"}, 0, []string{"payouts:manage", "sales:refund"}, ""},
		{"bad catalog", []string{"scopes", "--catalog", "nope.yaml"}, 2, nil, "read catalog"},
		{"unknown subcommand", []string{"scopes", "delete"}, 2, nil, `unknown command "delete"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, code := cli(t, "", tc.args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, out, errOut)
			}
			for _, want := range tc.out {
				if !strings.Contains(out, want) {
					t.Errorf("stdout lacks %q:\n%s", want, out)
				}
			}
			if !strings.Contains(errOut, tc.errOut) {
				t.Errorf("stderr lacks %q:\n%s", tc.errOut, errOut)
			}
		})
	}

	// --json prints what the endpoints answer.
	out, _, code := cli(t, "", "scopes", "--json", "--sensitive")
	var list struct {
		Count  int `json:"count"`
		Scopes []struct {
			Name string `json:"name"`
		} `json:"scopes"`
	}
	if err := json.Unmarshal([]byte(out), &list); code != 0 || err != nil || list.Count != 2 || list.Scopes[0].Name != "project:launch" {
		t.Fatalf("list --json: %d %v %s", code, err, out)
	}
	out, _, code = cli(t, "", "scopes", "normalize", "--json", "project:write project:read")
	var n struct {
		Minimal []string `json:"minimal"`
		Scope   string   `json:"scope"`
	}
	if err := json.Unmarshal([]byte(out), &n); code != 0 || err != nil || n.Scope != "project:write" {
		t.Fatalf("normalize --json: %d %v %s", code, err, out)
	}
}

// TestLocalCommandsOnABundle: decide and scopes read a bundle as serve does.
func TestLocalCommandsOnABundle(t *testing.T) {
	dir := t.TempDir()
	if out, _, code := cli(t, "", "build", "--catalog", "examples/marketplace/scopes.yaml", "--policies", "examples/marketplace/policies", "--out-dir", dir, "--name", "mk"); code != 0 {
		t.Fatalf("build: %d %s", code, out)
	}
	b := filepath.Join(dir, "mk")
	if out, errOut, code := cli(t, "", "decide", "--bundle", b, "--scopes", "payouts:read", "--method", "PUT", "--path", "/payouts/settings"); code != 3 || !strings.Contains(out, "missing:                   payouts:manage") {
		t.Fatalf("decide: %d %s %s", code, out, errOut)
	}
	if out, errOut, code := cli(t, "", "scopes", "--bundle", b+".tar.gz", "show", "payouts:manage"); code != 0 || !strings.Contains(out, "payouts:manage (sensitive)") {
		t.Fatalf("scopes: %d %s %s", code, out, errOut)
	}
}

// TestGenChecksPolicies: removing or renaming a scope a policy uses fails
// at gen time, naming the policy file and line.
func TestGenChecksPolicies(t *testing.T) {
	dir := t.TempDir()
	cat, err := os.ReadFile(repoPath("scopes.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "scopes.yaml"), bytes.ReplaceAll(cat, []byte("user:email"), []byte("user:mail")), 0o644); err != nil {
		t.Fatal(err)
	}
	pol := policiesCopy(t, dir, nil)
	actions := filepath.Join(pol, "actions.rego")
	line := 0
	b, _ := os.ReadFile(actions)
	for i, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, `"profile.email.read": {"any_of": ["user:email"]`) {
			line = i + 1
		}
	}
	out := filepath.Join(dir, "data.json")

	// The policies beside the catalog are checked by default.
	_, errOut, code := cli(t, "", "gen", "--catalog", filepath.Join(dir, "scopes.yaml"), "--out", out)
	want := actions + ":" + strconv.Itoa(line) + `: named action "profile.email.read" requires scope "user:email", which the catalog does not define (did you mean "user:mail"?)`
	if code != 2 || !strings.Contains(errOut, want) {
		t.Fatalf("exit %d, stderr:\n%s\nwant %s", code, errOut, want)
	}
	if _, err := os.Stat(out); err == nil {
		t.Fatal("gen wrote data for a catalog the policies do not match")
	}
	// --check fails the same way (CI).
	if _, errOut, code := cli(t, "", "gen", "--check", "--catalog", filepath.Join(dir, "scopes.yaml"), "--out", out); code != 2 || !strings.Contains(errOut, want) {
		t.Fatalf("--check: exit %d, %s", code, errOut)
	}
	// An explicit --policies, and - to skip.
	if _, errOut, code := cli(t, "", "gen", "--catalog", filepath.Join(dir, "scopes.yaml"), "--policies", pol, "--out", out); code != 2 || !strings.Contains(errOut, want) {
		t.Fatalf("--policies: exit %d, %s", code, errOut)
	}
	if _, errOut, code := cli(t, "", "gen", "--catalog", filepath.Join(dir, "scopes.yaml"), "--policies", "-", "--out", out); code != 0 {
		t.Fatalf("--policies -: exit %d, %s", code, errOut)
	}
	// build refuses the same catalog.
	if _, errOut, code := cli(t, "", "build", "--catalog", filepath.Join(dir, "scopes.yaml"), "--policies", pol, "--out-dir", filepath.Join(dir, "bundles")); code != 2 || !strings.Contains(errOut, want) {
		t.Fatalf("build: exit %d, %s", code, errOut)
	}
	// A route naming an action that does not exist.
	pol2 := policiesCopy(t, filepath.Join(dir, "two"), func(s string) string {
		return strings.Replace(s, `"action": "project.launch"}`, `"action": "project.lanch"}`, 1)
	})
	if _, errOut, code := cli(t, "", "gen", "--catalog", repoPath("scopes.yaml"), "--policies", pol2, "--out", out); code != 2 ||
		!strings.Contains(errOut, `route POST /projects/{id}/launch names action "project.lanch", which is neither a catalog scope nor a named action`) {
		t.Fatalf("route: exit %d, %s", code, errOut)
	}
	// No policies beside the catalog: a note, not a failure.
	lone := filepath.Join(dir, "lone")
	if err := os.MkdirAll(lone, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(lone, "scopes.yaml"), cat, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, errOut, code := cli(t, "", "gen", "--catalog", filepath.Join(lone, "scopes.yaml"), "--out", out); code != 0 || !strings.Contains(errOut, "were not checked") {
		t.Fatalf("lone catalog: exit %d, %s", code, errOut)
	}
}

// TestServeMarketplace: the second catalog served end to end with the same
// binary: decisions, batch, and its own catalog on /v1/scopes.
func TestServeMarketplace(t *testing.T) {
	srv := startServeArgs(t, t.TempDir(), "--catalog", repoPath("examples/marketplace/scopes.yaml"), "--policies", repoPath("examples/marketplace/policies"))
	for _, tc := range []struct {
		body, reason string
		allow        bool
	}{
		{`{"granted_scopes":"licenses:verify","method":"POST","path":"/licenses/verify"}`, "allowed", true},
		{`{"granted_scopes":"licenses:verify","method":"GET","path":"/licenses"}`, "missing_scope", false},
		{`{"granted_scopes":[],"method":"GET","path":"/store/products"}`, "allowed", true},
		{`{"granted_scopes":["project:manage"],"action":"products:read"}`, "unknown_scope", false},
	} {
		status, d := srv.decide(t, tc.body)
		if status != 200 || d["allow"] != tc.allow || d["reason"] != tc.reason {
			t.Errorf("%s: %d %v", tc.body, status, d)
		}
	}
	status, d := srv.decide(t, `{"granted_scopes":"sales:read","requested_scopes":"sales:read payouts:read","method":"GET","path":"/payouts"}`)
	if status != 200 || d["narrowed_by_user"] != true || d["reason"] != "missing_scope" {
		t.Errorf("narrowed: %d %v", status, d)
	}

	call := func(method, path, body string, out any) int {
		t.Helper()
		req, _ := http.NewRequest(method, srv.url+path, strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, raw)
		}
		return resp.StatusCode
	}
	var list struct {
		Count  int `json:"count"`
		Scopes []struct {
			Name string `json:"name"`
		} `json:"scopes"`
	}
	if status := call("GET", "/v1/scopes", "", &list); status != 200 || list.Count != 21 || list.Scopes[1].Name != "products:manage" {
		t.Errorf("/v1/scopes: %d %+v", status, list)
	}
	var batch struct {
		Results []map[string]any `json:"results"`
	}
	if status := call("POST", "/v1/decide/batch", `{"scope":"files:download support:write","checks":[
		{"method":"GET","path":"/products/1/files/2"},{"method":"POST","path":"/tickets/3/close"},{"action":"ticket.reply"}]}`, &batch); status != 200 ||
		len(batch.Results) != 3 || batch.Results[0]["allow"] != true || batch.Results[1]["allow"] != false || batch.Results[2]["allow"] != true {
		t.Errorf("batch: %d %+v", status, batch)
	}
	var norm struct {
		Minimal []string `json:"minimal"`
	}
	if status := call("POST", "/v1/scopes/normalize", `{"scopes":"licenses:manage licenses:verify"}`, &norm); status != 200 || strings.Join(norm.Minimal, " ") != "licenses:manage" {
		t.Errorf("normalize: %d %+v", status, norm)
	}
	var e struct {
		Error struct{ Code, Field string } `json:"error"`
	}
	if status := call("GET", "/v1/scopes/project:launch", "", &e); status != 404 || e.Error.Code != "unknown_scope" {
		t.Errorf("reference scope on the marketplace: %d %+v", status, e)
	}
}
