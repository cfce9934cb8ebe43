package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// copyDir copies the files of from (one level of subdirectories) into to.
func copyDir(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(to, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(to, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestGenAndBuildWriteBesideTheirCatalog: generating or building another
// catalog writes next to it, never over the bundle in the working directory.
func TestGenAndBuildWriteBesideTheirCatalog(t *testing.T) {
	work := t.TempDir()
	// The working directory holds a main bundle, as the repository does.
	mainData := filepath.Join(work, "bundles", "scopegate", "data.json")
	if err := os.MkdirAll(filepath.Dir(mainData), 0o755); err != nil {
		t.Fatal(err)
	}
	sentinel := []byte(`{"main": "bundle"}`)
	if err := os.WriteFile(mainData, sentinel, 0o644); err != nil {
		t.Fatal(err)
	}
	market := filepath.Join(work, "examples", "marketplace")
	copyDir(t, repoPath("examples/marketplace"), market)
	cat := filepath.Join("examples", "marketplace", "scopes.yaml")

	if out, code := run(t, work, "gen", "--catalog", cat); code != 0 || !strings.Contains(out, "examples/marketplace/bundles/scopegate/data.json") {
		t.Fatalf("gen: exit %d: %s", code, out)
	}
	if out, code := run(t, work, "build", "--catalog", cat); code != 0 || !strings.Contains(out, "examples/marketplace/bundles/scopegate.tar.gz") {
		t.Fatalf("build: exit %d: %s", code, out)
	}
	if b, _ := os.ReadFile(mainData); !bytes.Equal(b, sentinel) {
		t.Fatalf("the main bundle's data.json was overwritten: %.80s", b)
	}
	data, err := os.ReadFile(filepath.Join(market, "bundles", "scopegate", "data.json"))
	if err != nil || !bytes.Contains(data, []byte("licenses:verify")) {
		t.Fatalf("marketplace data.json: %v %.80s", err, data)
	}
	// The built bundle holds the marketplace's own policies.
	pol, err := os.ReadFile(filepath.Join(market, "bundles", "scopegate", "policies", "marketplace_test.rego"))
	if err != nil || len(pol) == 0 {
		t.Fatalf("the marketplace bundle lacks its own policies: %v", err)
	}
	if out, code := run(t, work, "gen", "--catalog", cat, "--check"); code != 0 {
		t.Fatalf("gen --check beside the catalog: exit %d: %s", code, out)
	}
	if out, code := run(t, work, "build", "--catalog", cat, "--check"); code != 0 {
		t.Fatalf("build --check beside the catalog: exit %d: %s", code, out)
	}
}

// TestServeCatalogWithItsOwnPolicies: --catalog alone serves the policies
// beside that catalog; another catalog's policies are refused at start.
func TestServeCatalogWithItsOwnPolicies(t *testing.T) {
	srv := startServeArgs(t, t.TempDir(), "--catalog", repoPath("examples/marketplace/scopes.yaml"))
	if status, d := srv.decide(t, `{"granted_scopes":"licenses:verify","method":"POST","path":"/licenses/verify"}`); status != 200 || d["allow"] != true {
		t.Errorf("marketplace route with --catalog alone: %d %v", status, d)
	}

	out, code := run(t, t.TempDir(), "serve", "--addr", "127.0.0.1:0",
		"--catalog", repoPath("examples/marketplace/scopes.yaml"), "--policies", repoPath("policies"))
	if code == 0 || !strings.Contains(out, "the policies do not match the catalog") ||
		!strings.Contains(out, `actions.rego:23: named action \"project.launch\" requires scope \"project:launch\", which the catalog does not define`) {
		t.Fatalf("mismatched policies: exit %d:\n%s", code, out)
	}
	out, code = run(t, t.TempDir(), "decide", "--catalog", repoPath("examples/marketplace/scopes.yaml"),
		"--scopes", "licenses:verify", "--method", "POST", "--path", "/licenses/verify")
	if code != 0 {
		t.Errorf("decide with --catalog alone: exit %d: %s", code, out)
	}
}
