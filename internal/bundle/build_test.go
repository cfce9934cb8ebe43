package bundle_test

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	opabundle "github.com/open-policy-agent/opa/v1/bundle"

	"github.com/scopegate/scopegate/internal/bundle"
	"github.com/scopegate/scopegate/internal/source"
)

func TestBuildManifestAndLayout(t *testing.T) {
	art := build(t, repoPolicies, nil)
	files, err := source.FromFiles(repoCatalog, repoPolicies)
	if err != nil {
		t.Fatal(err)
	}
	// Serving from files and serving the bundle report the same revision.
	if art.Revision != files.Revision || !strings.HasPrefix(art.Revision, "sha256-") {
		t.Fatalf("revision %q, files revision %q", art.Revision, files.Revision)
	}

	var names []string
	for name := range art.Files {
		names = append(names, name)
	}
	slices.Sort(names)
	want := []string{".manifest", "data.json", "policies/actions.rego", "policies/actions_test.rego", "policies/authz.rego", "policies/authz_test.rego"}
	if !slices.Equal(names, want) {
		t.Fatalf("files %v, want %v", names, want)
	}
	committedData, err := os.ReadFile(filepath.Join(repoPolicies, "..", "bundles", "scopegate", "data.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(art.Files["data.json"], committedData) {
		t.Error("data.json differs from what `scopegate gen` writes")
	}

	// The tarball reads back with OPA's own reader.
	b, err := opabundle.NewReader(bytes.NewReader(art.TarGz)).Read()
	if err != nil {
		t.Fatal(err)
	}
	if b.Manifest.Revision != art.Revision {
		t.Errorf("tar manifest revision %q", b.Manifest.Revision)
	}
	if b.Manifest.Roots == nil || !slices.Equal(*b.Manifest.Roots, []string{"scopegate"}) {
		t.Errorf("roots %v", b.Manifest.Roots)
	}
	if b.Manifest.RegoVersion == nil || *b.Manifest.RegoVersion != 1 {
		t.Errorf("rego_version %v", b.Manifest.RegoVersion)
	}
	if len(b.Modules) != 4 {
		t.Errorf("%d modules in the tarball", len(b.Modules))
	}
	for _, m := range b.Modules {
		if !bytes.Equal(m.Raw, art.Files[strings.TrimPrefix(m.Path, "/")]) {
			t.Errorf("%s: tarball and directory differ (the writer must not reformat)", m.Path)
		}
	}
	if err := bundle.ValidateCatalog(b.Data); err != nil {
		t.Error(err)
	}

	// Both forms load into the same source.
	dir, tgz := writeBundle(t, art)
	for _, p := range []string{dir, tgz} {
		src, err := bundle.LoadPath(p, bundle.LoadOptions{})
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if src.Revision != art.Revision || len(src.Modules) != 2 || len(src.Tests) != 2 || src.Catalog != nil {
			t.Errorf("%s: revision %s, %d modules, %d tests", p, src.Revision, len(src.Modules), len(src.Tests))
		}
	}
}

func TestBuildIsDeterministic(t *testing.T) {
	a, b := build(t, repoPolicies, nil), build(t, repoPolicies, nil)
	if !bytes.Equal(a.TarGz, b.TarGz) {
		t.Fatal("two builds of the same content gave different tarballs")
	}
	dirA, tgzA := writeBundle(t, a)
	dirB, tgzB := writeBundle(t, b)
	ra, _ := os.ReadFile(tgzA)
	rb, _ := os.ReadFile(tgzB)
	if !bytes.Equal(ra, rb) {
		t.Fatal("written tarballs differ")
	}
	for name := range a.Files {
		x, _ := os.ReadFile(filepath.Join(dirA, name))
		y, _ := os.ReadFile(filepath.Join(dirB, name))
		if !bytes.Equal(x, y) {
			t.Errorf("%s differs between builds", name)
		}
	}
	// Another content, another revision.
	c := build(t, copyPolicies(t, revisionB), nil)
	if c.Revision == a.Revision {
		t.Fatal("an edited policy kept the revision")
	}
}

func TestCheckDetectsStaleness(t *testing.T) {
	art := build(t, repoPolicies, nil)
	out := t.TempDir()
	diffs, err := art.Check(out, "scopegate")
	if err != nil || len(diffs) == 0 {
		t.Fatalf("empty dir: %v %v", diffs, err)
	}
	if _, err := art.Write(out, "scopegate"); err != nil {
		t.Fatal(err)
	}
	if diffs, err := art.Check(out, "scopegate"); err != nil || len(diffs) != 0 {
		t.Fatalf("fresh bundle: %v %v", diffs, err)
	}

	dir := bundle.DirPath(out, "scopegate")
	for _, tc := range []struct {
		name, want string
		mutate     func()
		undo       func()
	}{
		{"edited policy", "policies/authz.rego differs",
			func() { appendTo(t, filepath.Join(dir, "policies", "authz.rego"), "\n# edit\n") },
			func() { restore(t, art, dir, "policies/authz.rego") }},
		{"extra file", "policies/extra.rego should not be there",
			func() {
				writeFile(t, filepath.Join(dir, "policies", "extra.rego"), []byte("package scopegate.extra\n"))
			},
			func() { os.Remove(filepath.Join(dir, "policies", "extra.rego")) }},
		{"missing data", "data.json is missing",
			func() { os.Remove(filepath.Join(dir, "data.json")) },
			func() { restore(t, art, dir, "data.json") }},
		{"tarball replaced", "scopegate.tar.gz: policies/actions.rego differs",
			func() {
				writeFile(t, bundle.TarPath(out, "scopegate"), build(t, copyPolicies(t, revisionB), nil).TarGz)
			},
			func() { writeFile(t, bundle.TarPath(out, "scopegate"), art.TarGz) }},
		{"tarball corrupt", "not a gzip file",
			func() { writeFile(t, bundle.TarPath(out, "scopegate"), []byte("garbage")) },
			func() { writeFile(t, bundle.TarPath(out, "scopegate"), art.TarGz) }},
	} {
		tc.mutate()
		diffs, err := art.Check(out, "scopegate")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(strings.Join(diffs, "\n"), tc.want) {
			t.Errorf("%s: diffs %q, want %q", tc.name, diffs, tc.want)
		}
		tc.undo()
		if diffs, _ := art.Check(out, "scopegate"); len(diffs) != 0 {
			t.Fatalf("%s: not restored: %v", tc.name, diffs)
		}
	}

	// A policy edit in policies/ makes the written bundle stale, and a
	// rebuild removes files that no longer belong.
	writeFile(t, filepath.Join(dir, "policies", "old.rego"), []byte("package scopegate.old\n"))
	newer := build(t, copyPolicies(t, revisionB), nil)
	if diffs, _ := newer.Check(out, "scopegate"); len(diffs) == 0 {
		t.Fatal("check missed a policy edit")
	}
	removed, err := newer.Write(out, "scopegate")
	if err != nil || !slices.Equal(removed, []string{"policies/old.rego"}) {
		t.Fatalf("removed %v, %v", removed, err)
	}
	if diffs, _ := newer.Check(out, "scopegate"); len(diffs) != 0 {
		t.Fatalf("after rebuild: %v", diffs)
	}
}

func appendTo(t *testing.T, p, s string) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, p, append(b, s...))
}

func restore(t *testing.T, art *bundle.Artifact, dir, name string) {
	t.Helper()
	writeFile(t, filepath.Join(dir, filepath.FromSlash(name)), art.Files[name])
}
