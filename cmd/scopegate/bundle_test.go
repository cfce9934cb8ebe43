package main

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// run runs the scopegate binary and returns its combined output and exit code.
func run(t *testing.T, dir string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Dir = dir
	b, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return string(b), ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(b), 0
}

// policiesCopy copies policies/ into dir/policies, editing actions.rego.
func policiesCopy(t *testing.T, dir string, editActions func(string) string) string {
	t.Helper()
	out := filepath.Join(dir, "policies")
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(repoPath("policies"), "*.rego"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if filepath.Base(f) == "actions.rego" && editActions != nil {
			b = []byte(editActions(string(b)))
		}
		if err := os.WriteFile(filepath.Join(out, filepath.Base(f)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// projectListNeedsWrite is revision B: a project:read token may no longer
// list projects.
func projectListNeedsWrite(s string) string {
	const from = `"project.list": {"any_of": ["project:read"]`
	if !strings.Contains(s, from) {
		panic("actions.rego no longer has " + from)
	}
	return strings.Replace(s, from, `"project.list": {"any_of": ["project:write"]`, 1)
}

var revisionRE = regexp.MustCompile(`revision (sha256-[0-9a-f]{16})`)

// buildBundle runs `scopegate build` into outDir and returns the revision.
func buildBundle(t *testing.T, policies, outDir string, args ...string) string {
	t.Helper()
	out, code := run(t, "", append([]string{"build", "--catalog", repoPath("scopes.yaml"), "--policies", policies, "--out-dir", outDir}, args...)...)
	m := revisionRE.FindStringSubmatch(out)
	if code != 0 || m == nil {
		t.Fatalf("build: %d %s", code, out)
	}
	return m[1]
}

func TestBuildCommand(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "bundles")
	base := []string{"build", "--catalog", repoPath("scopes.yaml"), "--policies", repoPath("policies"), "--out-dir", out}
	if msg, code := run(t, dir, append(base, "--check")...); code != 1 || !strings.Contains(msg, "stale") {
		t.Fatalf("check before build: %d %s", code, msg)
	}
	msg, code := run(t, dir, base...)
	if code != 0 || !strings.Contains(msg, "unsigned") {
		t.Fatalf("build: %d %s", code, msg)
	}
	for _, p := range []string{"scopegate/.manifest", "scopegate/data.json", "scopegate/policies/authz.rego", "scopegate/policies/authz_test.rego", "scopegate.tar.gz"} {
		if _, err := os.Stat(filepath.Join(out, p)); err != nil {
			t.Errorf("build did not write %s", p)
		}
	}
	var manifest struct {
		Revision string
		Roots    []string
	}
	raw, _ := os.ReadFile(filepath.Join(out, "scopegate", ".manifest"))
	if err := json.Unmarshal(raw, &manifest); err != nil || !strings.HasPrefix(manifest.Revision, "sha256-") || fmt.Sprint(manifest.Roots) != "[scopegate]" {
		t.Fatalf("manifest %s", raw)
	}
	tar1, _ := os.ReadFile(filepath.Join(out, "scopegate.tar.gz"))
	if msg, code := run(t, dir, base...); code != 0 {
		t.Fatalf("rebuild: %s", msg)
	}
	tar2, _ := os.ReadFile(filepath.Join(out, "scopegate.tar.gz"))
	if string(tar1) != string(tar2) {
		t.Error("two builds wrote different tarballs")
	}
	if msg, code := run(t, dir, append(base, "--check")...); code != 0 || !strings.Contains(msg, "up to date") {
		t.Fatalf("check after build: %d %s", code, msg)
	}
	f := filepath.Join(out, "scopegate", "policies", "authz.rego")
	b, _ := os.ReadFile(f)
	if err := os.WriteFile(f, append(b, "\n# edited\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	if msg, code := run(t, dir, append(base, "--check")...); code != 1 || !strings.Contains(msg, "policies/authz.rego differs") {
		t.Fatalf("check missed an edit: %d %s", code, msg)
	}

	// The committed bundle is fresh.
	if msg, code := run(t, repoPath("."), "build", "--check"); code != 0 {
		t.Fatalf("bundles/ is stale: run go run ./cmd/scopegate build\n%s", msg)
	}
}

func TestTestCommand(t *testing.T) {
	msg, code := run(t, repoPath("."), "test", "-v", "--coverage")
	if code != 0 || !regexp.MustCompile(`PASS: (\d+)/(\d+)`).MatchString(msg) ||
		!strings.Contains(msg, "data.scopegate.authz_test.test_manage_allows_launch: PASS") ||
		!regexp.MustCompile(`Coverage: \d+\.\d\d% \(\d+ of \d+ lines\)`).MatchString(msg) {
		t.Fatalf("test -v --coverage: %d\n%s", code, msg)
	}
	if msg, code := run(t, repoPath("."), "test", "--threshold", "100.01"); code != 1 || !strings.Contains(msg, "below the threshold") {
		t.Errorf("threshold: %d %s", code, msg)
	}

	// A failing Rego test fails the command and is named.
	dir := t.TempDir()
	pol := policiesCopy(t, dir, projectListNeedsWrite)
	msg, code = run(t, dir, "test", "--catalog", repoPath("scopes.yaml"), "--policies", pol)
	if code != 1 || !strings.Contains(msg, "FAIL") || !strings.Contains(msg, "Rego tests failed") {
		t.Fatalf("failing test: %d\n%s", code, msg)
	}

	// --bundle tests a built bundle.
	buildBundle(t, repoPath("policies"), filepath.Join(dir, "out"))
	for _, p := range []string{"out/scopegate", "out/scopegate.tar.gz"} {
		if msg, code := run(t, dir, "test", "--bundle", p); code != 0 || !strings.Contains(msg, "PASS: ") {
			t.Errorf("test --bundle %s: %d %s", p, code, msg)
		}
	}
}

func (r *running) get(t *testing.T, path string) (int, map[string]any, string) {
	t.Helper()
	resp, err := http.Get(r.url + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	return resp.StatusCode, out, string(raw)
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	tmp := to + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, to); err != nil {
		t.Fatal(err)
	}
}

// TestServeBundle: serve --bundle loads a .tar.gz, keeps the last good
// revision when a corrupt one lands, and swaps in a good new one.
func TestServeBundle(t *testing.T) {
	dir := t.TempDir()
	revA := buildBundle(t, repoPath("policies"), filepath.Join(dir, "a"))
	revB := buildBundle(t, policiesCopy(t, filepath.Join(dir, "src-b"), projectListNeedsWrite), filepath.Join(dir, "b"))
	live := filepath.Join(dir, "live.tar.gz")
	copyFile(t, filepath.Join(dir, "a", "scopegate.tar.gz"), live)

	srv := startServeArgs(t, dir, "--bundle", live, "--bundle-poll", "50ms", "--bundle-run-tests=false")
	const readList = `{"granted_scopes":["project:read"],"action":"project.list"}`
	status, body, raw := srv.get(t, "/ready")
	if status != 200 || body["bundle_revision"] != revA || body["bundle"].(map[string]any)["source"] != live {
		t.Fatalf("/ready %d %s", status, raw)
	}
	if _, d := srv.decide(t, readList); d["allow"] != true || d["bundle_revision"] != revA {
		t.Fatalf("revision A: %v", d)
	}

	// A corrupt bundle: refused, A keeps serving, /ready and /metrics say so.
	if err := os.WriteFile(live+".tmp", []byte("corrupt"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(live+".tmp", live); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the failure on /ready", func() bool {
		_, body, _ := srv.get(t, "/ready")
		return body["last_error"] != nil
	})
	status, body, raw = srv.get(t, "/ready")
	if status != 200 || body["bundle_revision"] != revA || !strings.HasPrefix(body["last_error"].(string), "read: ") {
		t.Fatalf("/ready after a corrupt bundle: %d %s", status, raw)
	}
	if _, d := srv.decide(t, readList); d["allow"] != true || d["bundle_revision"] != revA {
		t.Fatalf("after the corrupt bundle: %v", d)
	}
	_, _, metrics := srv.get(t, "/metrics")
	for _, want := range []string{
		`scopegate_bundle_loads_total{result="failure"} 1`,
		`scopegate_bundle_loads_total{result="success"} 1`,
		`scopegate_bundle_load_failures_total{stage="read"} 1`,
		`scopegate_bundle_revision_info{revision="` + revA + `"} 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	// Revision B arrives and takes over.
	copyFile(t, filepath.Join(dir, "b", "scopegate.tar.gz"), live)
	waitUntil(t, "revision B", func() bool {
		_, body, _ := srv.get(t, "/ready")
		return body["bundle_revision"] == revB
	})
	if _, d := srv.decide(t, readList); d["allow"] != false || d["reason"] != "missing_scope" || d["bundle_revision"] != revB {
		t.Fatalf("revision B: %v", d)
	}
	if _, body, raw := srv.get(t, "/ready"); body["last_error"] != nil {
		t.Errorf("error not cleared: %s", raw)
	}

	if err := srv.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-srv.done:
		if err != nil {
			t.Fatalf("exit: %v\n%s", err, srv.stderr)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no exit after SIGTERM")
	}
}

// TestServeBundleMissing: with no good bundle the server still starts,
// is not ready, denies with policy_error, and loads the bundle once it
// appears.
func TestServeBundleMissing(t *testing.T) {
	dir := t.TempDir()
	live := filepath.Join(dir, "live.tar.gz")
	srv := startServeArgs(t, dir, "--bundle", live, "--bundle-poll", "50ms")
	status, body, raw := srv.get(t, "/ready")
	if status != 503 || body["ready"] != false || !strings.Contains(fmt.Sprint(body["last_error"]), "no such file") {
		t.Fatalf("/ready %d %s", status, raw)
	}
	if _, d := srv.decide(t, `{"granted_scopes":["project:manage"],"action":"project:read"}`); d["allow"] != false || d["reason"] != "policy_error" {
		t.Fatalf("decision without a policy: %v", d)
	}
	rev := buildBundle(t, repoPath("policies"), filepath.Join(dir, "out"))
	copyFile(t, filepath.Join(dir, "out", "scopegate.tar.gz"), live)
	waitUntil(t, "the bundle to load", func() bool {
		status, _, _ := srv.get(t, "/ready")
		return status == 200
	})
	if _, d := srv.decide(t, `{"granted_scopes":["project:manage"],"action":"project:read"}`); d["allow"] != true || d["bundle_revision"] != rev {
		t.Fatalf("after the bundle appeared: %v", d)
	}
}

// TestServeSignedBundle: with --verification-key a signed bundle serves and
// an unsigned one is refused.
func TestServeSignedBundle(t *testing.T) {
	dir := t.TempDir()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	priv := filepath.Join(dir, "private.pem")
	pub := filepath.Join(dir, "public.pem")
	pubDER, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err := os.WriteFile(priv, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pub, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o644); err != nil {
		t.Fatal(err)
	}
	rev := buildBundle(t, repoPath("policies"), filepath.Join(dir, "signed"), "--signing-key", priv)
	buildBundle(t, repoPath("policies"), filepath.Join(dir, "unsigned"))

	for _, form := range []string{"scopegate", "scopegate.tar.gz"} {
		srv := startServeArgs(t, dir, "--bundle", filepath.Join(dir, "signed", form), "--verification-key", pub, "--bundle-run-tests")
		if status, body, raw := srv.get(t, "/ready"); status != 200 || body["bundle_revision"] != rev {
			t.Errorf("signed %s: /ready %d %s", form, status, raw)
		}
		_ = srv.cmd.Process.Kill()
		_ = srv.waitExit(t) // the next server takes over the same decision log

		srv = startServeArgs(t, dir, "--bundle", filepath.Join(dir, "unsigned", form), "--verification-key", pub)
		status, body, raw := srv.get(t, "/ready")
		if status != 503 || !strings.Contains(fmt.Sprint(body["last_error"]), "verify: bundle missing .signatures.json") {
			t.Errorf("unsigned %s: /ready %d %s", form, status, raw)
		}
		_ = srv.cmd.Process.Kill()
		_ = srv.waitExit(t) // the next server takes over the same decision log

		// Signed or not, a bundle over --bundle-max-bytes is refused.
		srv = startServeArgs(t, dir, "--bundle", filepath.Join(dir, "signed", form), "--verification-key", pub, "--bundle-max-bytes", "16KiB")
		status, body, raw = srv.get(t, "/ready")
		if status != 503 || !strings.Contains(fmt.Sprint(body["last_error"]), "16384 bytes") {
			t.Errorf("signed %s over --bundle-max-bytes: /ready %d %s", form, status, raw)
		}
		_ = srv.cmd.Process.Kill()
		_ = srv.waitExit(t) // the next server takes over the same decision log
	}

	// A key that is not a public key is refused at start-up.
	if msg, code := run(t, dir, "serve", "--addr", "127.0.0.1:0", "--bundle", filepath.Join(dir, "signed", "scopegate"), "--verification-key", priv); code == 0 || !strings.Contains(msg, "private key") {
		t.Errorf("private key as verification key: %d %s", code, msg)
	}
}

// TestReadmeSigningSteps runs the README's signing block as written (with
// this binary for `go run ./cmd/scopegate`): it creates every key it names,
// signs with each, and leaves nothing in the repository.
func TestReadmeSigningSteps(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl is not installed")
	}
	readme, err := os.ReadFile(repoPath("README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, block, ok := strings.Cut(string(readme), "```sh\nkeys=$(mktemp -d)")
	if !ok {
		t.Fatal("README has no signing block starting keys=$(mktemp -d)")
	}
	block, _, _ = strings.Cut(block, "```")
	tmp := t.TempDir()
	script := "keys=" + tmp + "\n" + strings.ReplaceAll(block, "go run ./cmd/scopegate", binary)
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", script)
	cmd.Dir = repoPath(".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("README signing steps: %v\n%s", err, out)
	}
	for _, f := range []string{"private.pem", "public.pem", "ec.pem", "ec-public.pem", "secret.txt", "dist/scopegate/.signatures.json", "dist/scopegate.tar.gz"} {
		if _, err := os.Stat(filepath.Join(tmp, f)); err != nil {
			t.Errorf("the README's steps did not make %s: %v", f, err)
		}
	}
	for _, f := range []string{"private.pem", "public.pem", "ec.pem", "secret.txt", "dist"} {
		if _, err := os.Stat(repoPath(f)); err == nil {
			t.Errorf("the README's steps left %s in the repository", f)
		}
	}
}

// TestServeRefusesWedgedBundle: a bundle whose smoke decision would run for
// hours is refused at the decision deadline; serve listens meanwhile, and
// a good bundle that follows is activated (the watcher is not wedged).
func TestServeRefusesWedgedBundle(t *testing.T) {
	dir := t.TempDir()
	buildBundle(t, repoPath("policies"), filepath.Join(dir, "out"))
	live := filepath.Join(dir, "out", "scopegate")
	authz := filepath.Join(live, "policies", "authz.rego")
	good, err := os.ReadFile(authz)
	if err != nil {
		t.Fatal(err)
	}
	const field = `"allow": allow,`
	if !bytes.Contains(good, []byte(field)) {
		t.Fatal("authz.rego no longer has " + field)
	}
	wedged := bytes.Replace(good, []byte(field), []byte(field+` "spin": spin,`), 1)
	wedged = append(wedged, "\nspin := count([1 | some i in numbers.range(1, 100000); some j in numbers.range(1, 100000)])\n"...)
	if err := os.WriteFile(authz, wedged, 0o644); err != nil {
		t.Fatal(err)
	}

	srv := startServeArgs(t, dir, "--bundle", live, "--bundle-poll", "100ms", "--decision-timeout", "200ms")
	status, body, raw := srv.get(t, "/ready")
	if status != 503 || !strings.Contains(fmt.Sprint(body["last_error"]), "deadline") {
		t.Fatalf("/ready with a wedged bundle: %d %s", status, raw)
	}
	if _, d := srv.decide(t, `{"granted_scopes":["project:manage"],"action":"project:read"}`); d["allow"] != false || d["reason"] != "policy_error" {
		t.Fatalf("decision without a policy: %v", d)
	}
	if err := os.WriteFile(authz, good, 0o644); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the good bundle", func() bool {
		status, _, _ := srv.get(t, "/ready")
		return status == 200
	})
}
