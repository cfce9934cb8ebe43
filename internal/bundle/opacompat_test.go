package bundle_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/scopegate/scopegate/internal/bundle"
	"github.com/scopegate/scopegate/internal/server"
)

// The real `opa` CLI must accept scopegate's bundles and decide exactly as
// scopegate does. These tests run the opa binary named by SCOPEGATE_OPA, or
// else the one on PATH, or else the one .ci/run installs in .ci/bin; they
// skip only when there is none (CI installs it at the go.mod version).

var compatCases = []string{
	`{"granted_scopes":["project:manage"],"action":"project:launch"}`,
	`{"granted_scopes":["project:write"],"action":"project:read"}`,
	`{"granted_scopes":["project:write"],"action":"project:launch"}`,
	`{"granted_scopes":"user:read project:write","action":"project.list"}`,
	`{"granted_scopes":["user:read"],"action":"profile.email.read"}`,
	`{"granted_scopes":["user:manage"],"action":"user:email"}`,
	`{"granted_scopes":[],"action":"public"}`,
	`{"granted_scopes":[],"action":"user:read"}`,
	`{"granted_scopes":["user:read","user:delete"],"action":"user:read"}`,
	`{"granted_scopes":["user:read"],"action":"no.such.action"}`,
	`{"granted_scopes":["user:manage"],"method":"GET","path":"/me/email"}`,
	`{"granted_scopes":["project:read"],"method":"get","path":"/projects/7"}`,
	`{"granted_scopes":["project:read"],"method":"GET","path":"/projects/templates"}`,
	`{"granted_scopes":["project:read"],"method":"DELETE","path":"/projects/42"}`,
	`{"granted_scopes":["project:manage"],"method":"GET","path":"/nowhere"}`,
	`{"granted_scopes":["glossary:write"],"action":"glossary.delete"}`,
	// The raw forms the server normalises: scope (RFC 7662) for granted_scopes.
	`{"scope":"project:manage user:read","action":"project:launch"}`,
	`{"scope":["project:write"],"action":"project:launch"}`,
	`{"scope":"","action":"user:read"}`,
	// Foreign scopes (OIDC's) confer nothing and are not unknown.
	`{"scope":"openid profile user:read","action":"user:read"}`,
	`{"scope":"openid","action":"user:read"}`,
}

func opaBinary(t *testing.T) string {
	t.Helper()
	p := os.Getenv("SCOPEGATE_OPA")
	if p == "" {
		p, _ = exec.LookPath("opa")
	}
	if p == "" {
		if ci, err := filepath.Abs(filepath.Join("..", "..", ".ci", "bin", "opa")); err == nil {
			if _, err := os.Stat(ci); err == nil {
				p = ci
			}
		}
	}
	if p == "" {
		t.Skip("no opa: set SCOPEGATE_OPA, put opa on PATH, or run .ci/run (go install github.com/open-policy-agent/opa@<go.mod version>)")
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

func runOPA(t *testing.T, opa string, stdin string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, opa, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("opa %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.Bytes())
	}
	return out
}

type verdict struct {
	Allow  bool   `json:"allow"`
	Reason string `json:"reason"`
	Action string `json:"action"`
}

// activate loads the bundle at path into a fresh manager, as serve does.
func activate(t *testing.T, path string) *bundle.Manager {
	t.Helper()
	src, err := bundle.LoadPath(path, bundle.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m := bundle.NewManager(bundle.ManagerOptions{})
	if err := m.Activate(context.Background(), src, path); err != nil {
		t.Fatal(err)
	}
	return m
}

// scopegateVerdicts answers the cases with scopegate's own server on the
// bundle at path.
func scopegateVerdicts(t *testing.T, path string) []verdict {
	t.Helper()
	ts := httptest.NewServer(server.New(activate(t, path).Engine(), server.Options{}))
	defer ts.Close()
	var out []verdict
	reasons := map[string]bool{}
	for _, c := range compatCases {
		d := decide(t, ts.URL, c)
		out = append(out, verdict{Allow: d.Allow, Reason: d.Reason})
		reasons[d.Reason] = true
	}
	for _, r := range []string{"allowed", "missing_scope", "no_scopes", "unknown_scope", "unknown_action"} {
		if !reasons[r] {
			t.Errorf("the case table never yields %s", r)
		}
	}
	return out
}

func TestOPACompatTestAndEval(t *testing.T) {
	opa := opaBinary(t)
	t.Logf("%s", bytes.TrimSpace(runOPA(t, opa, "", "version")))
	dir, tgz := writeBundle(t, build(t, repoPolicies, nil))

	// opa test passes on the bundle, directory and tarball.
	for _, p := range []string{dir, tgz} {
		out := runOPA(t, opa, "", "test", "-b", p)
		if !strings.Contains(string(out), "PASS: ") || strings.Contains(string(out), "FAIL") {
			t.Errorf("opa test -b %s:\n%s", p, out)
		}
	}

	// opa eval -b decides every case as scopegate does.
	want := scopegateVerdicts(t, dir)
	for i, c := range compatCases {
		out := runOPA(t, opa, c, "eval", "-b", tgz, "-I", "-f", "json", "data.scopegate.authz.decision")
		var res struct {
			Result []struct {
				Expressions []struct {
					Value verdict `json:"value"`
				} `json:"expressions"`
			} `json:"result"`
		}
		if err := json.Unmarshal(out, &res); err != nil || len(res.Result) != 1 || len(res.Result[0].Expressions) != 1 {
			t.Fatalf("case %s: opa eval said %s (%v)", c, out, err)
		}
		got := res.Result[0].Expressions[0].Value
		if got.Allow != want[i].Allow || got.Reason != want[i].Reason {
			t.Errorf("case %s: opa eval %+v, scopegate %+v", c, got, want[i])
		}
	}
}

func TestOPACompatRunServer(t *testing.T) {
	opa := opaBinary(t)
	kp := newKeys(t, "RS256")
	art := build(t, repoPolicies, nil)
	dir, tgz := writeBundle(t, art)
	_, signedTgz := writeBundle(t, build(t, repoPolicies, &bundle.SigningOptions{KeyFile: kp.private}))
	want := scopegateVerdicts(t, dir)

	for _, tc := range []struct {
		name, bundle string
		args         []string
	}{
		{"tarball", tgz, nil},
		{"signed tarball, verified", signedTgz, []string{"--verification-key", kp.public}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url := startOPA(t, opa, append(tc.args, "-b", tc.bundle)...)
			var bundles struct {
				Result map[string]struct {
					Manifest struct{ Revision string } `json:"manifest"`
				} `json:"result"`
			}
			getJSON(t, url+"/v1/data/system/bundles", &bundles)
			if b, ok := bundles.Result[tc.bundle]; !ok || b.Manifest.Revision != art.Revision {
				t.Errorf("opa reports bundles %+v, want revision %s", bundles.Result, art.Revision)
			}
			for i, c := range compatCases {
				resp, err := http.Post(url+"/v1/data/scopegate/authz/decision", "application/json", strings.NewReader(`{"input":`+c+`}`))
				if err != nil {
					t.Fatal(err)
				}
				var res struct{ Result verdict }
				err = json.NewDecoder(resp.Body).Decode(&res)
				resp.Body.Close()
				if err != nil || resp.StatusCode != 200 {
					t.Fatalf("case %s: %d %v", c, resp.StatusCode, err)
				}
				if res.Result.Allow != want[i].Allow || res.Result.Reason != want[i].Reason {
					t.Errorf("case %s: opa run %+v, scopegate %+v", c, res.Result, want[i])
				}
			}
		})
	}

	// And opa refuses it when the key is wrong, as scopegate does.
	other := newKeys(t, "RS256")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, opa, "run", "--server", "--addr", "127.0.0.1:"+freePort(t),
		"--verification-key", other.public, "-b", signedTgz).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "verify") {
		t.Errorf("opa run with the wrong key: %v\n%s", err, out)
	}
}

// TestOPASignedBundleLoadsInScopegate: a bundle signed by `opa build
// --signing-key` verifies in scopegate.
func TestOPASignedBundleLoadsInScopegate(t *testing.T) {
	opa := opaBinary(t)
	kp := newKeys(t, "ES256")
	dir, _ := writeBundle(t, build(t, repoPolicies, nil))
	out := filepath.Join(t.TempDir(), "opa-built.tar.gz")
	runOPA(t, opa, "", "build", "-b", dir, "--signing-key", kp.private, "--signing-alg", "ES256", "-o", out)
	vc, err := bundle.NewVerificationConfig(bundle.VerificationOptions{KeyFile: kp.public, Algorithm: "ES256"})
	if err != nil {
		t.Fatal(err)
	}
	src, err := bundle.LoadPath(out, bundle.LoadOptions{Verification: vc})
	if err != nil {
		t.Fatalf("scopegate refused opa's signed bundle: %v", err)
	}
	m := bundle.NewManager(bundle.ManagerOptions{})
	if err := m.Activate(context.Background(), src, out); err != nil {
		t.Fatal(err)
	}
}

// startOPA runs `opa run --server` on a free loopback port until the test
// ends, and waits for it to be healthy with its bundles loaded.
func startOPA(t *testing.T, opa string, args ...string) string {
	t.Helper()
	addr := "127.0.0.1:" + freePort(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	cmd := exec.CommandContext(ctx, opa, append([]string{"run", "--server", "--addr", addr, "--log-level", "error"}, args...)...)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cancel()
		<-exited
	})
	url := "http://" + addr
	deadline := time.After(30 * time.Second)
	for {
		resp, err := http.Get(url + "/health?bundles")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return url
			}
		}
		select {
		case werr := <-exited:
			exited <- werr // for the cleanup
			t.Fatalf("opa run exited: %v\n%s", werr, logs.String())
		case <-deadline:
			t.Fatalf("opa run did not become healthy: %v", err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return fmt.Sprint(ln.Addr().(*net.TCPAddr).Port)
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

// TestOPACompatLogMask: a policy with decision-log masking (package
// system.log) builds into a bundle the opa CLI loads, and opa eval's
// data.system.log.mask is what scopegate's engine masks.
func TestOPACompatLogMask(t *testing.T) {
	policies := copyPolicies(t, nil)
	writeFile(t, filepath.Join(policies, "mask.rego"), []byte(`package system.log

mask contains "/input/resource/owner" if input.input.resource.type == "project"
`))
	art := build(t, policies, nil)
	if roots := *art.Bundle.Manifest.Roots; !slices.Equal(roots, []string{"scopegate", "system/log"}) {
		t.Fatalf("manifest roots %q, want scopegate and system/log", roots)
	}
	dir, tgz := writeBundle(t, art)
	m := activate(t, dir)
	record := `{"input":{"action":"project:read","resource":{"type":"project","owner":"alice"}},"result":{"allow":true}}`
	var asMap map[string]any
	if err := json.Unmarshal([]byte(record), &asMap); err != nil {
		t.Fatal(err)
	}
	ours, err := m.Engine().LogMask(context.Background(), asMap)
	if err != nil || !slices.Equal(ours, []string{"/input/resource/owner"}) {
		t.Fatalf("scopegate LogMask = %q, %v", ours, err)
	}

	opa := opaBinary(t)
	out := runOPA(t, opa, record, "eval", "-b", tgz, "-I", "-f", "json", "data.system.log.mask")
	var res struct {
		Result []struct {
			Expressions []struct {
				Value []string `json:"value"`
			} `json:"expressions"`
		} `json:"result"`
	}
	if err := json.Unmarshal(out, &res); err != nil || len(res.Result) != 1 || !slices.Equal(res.Result[0].Expressions[0].Value, ours) {
		t.Errorf("opa eval data.system.log.mask: %s (%v), scopegate %q", out, err, ours)
	}
}
