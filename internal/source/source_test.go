package source_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/scopegate/scopegate/internal/source"
)

func TestFromFiles(t *testing.T) {
	a, err := source.FromFiles("../../scopes.yaml", "../../policies")
	if err != nil {
		t.Fatal(err)
	}
	b, err := source.FromFiles("../../scopes.yaml", "../../policies")
	if err != nil {
		t.Fatal(err)
	}
	if a.Revision == "" || a.Revision != b.Revision {
		t.Fatalf("revision not deterministic: %q vs %q", a.Revision, b.Revision)
	}
	for name := range a.Modules {
		if strings.HasSuffix(name, "_test.rego") {
			t.Errorf("test module %s among policies", name)
		}
	}
	if len(a.Tests) == 0 || len(a.Modules) == 0 {
		t.Fatalf("%d modules, %d tests", len(a.Modules), len(a.Tests))
	}
	if _, ok := a.Data["scopegate"].(map[string]any)["catalog"]; !ok {
		t.Fatal("no data.scopegate.catalog")
	}
	mods, err := a.Parse(true)
	if err != nil {
		t.Fatal(err)
	}
	if len(mods) != len(a.Modules)+len(a.Tests) {
		t.Fatalf("parsed %d modules", len(mods))
	}
	for i := 1; i < len(mods); i++ {
		if mods[i-1].Name >= mods[i].Name {
			t.Fatalf("not sorted: %s before %s", mods[i-1].Name, mods[i].Name)
		}
	}
}

// TestRevisionFollowsContent: any change to a policy changes the revision,
// so a served decision always names the content that made it.
func TestRevisionFollowsContent(t *testing.T) {
	dir := t.TempDir()
	write := func(body string) string {
		if err := os.WriteFile(filepath.Join(dir, "p.rego"), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		s, err := source.FromFiles("../../scopes.yaml", dir)
		if err != nil {
			t.Fatal(err)
		}
		return s.Revision
	}
	r1 := write("package scopegate.x\n\na := 1\n")
	r2 := write("package scopegate.x\n\na := 2\n")
	if r1 == r2 {
		t.Fatal("revision unchanged after a policy edit")
	}
	if _, err := source.FromFiles("../../scopes.yaml", t.TempDir()); err == nil {
		t.Fatal("an empty policy directory was accepted")
	}
	s, _ := source.FromFiles("../../scopes.yaml", dir)
	s.Modules["bad.rego"] = "package x\n\na := {\n"
	if _, err := s.Parse(false); err == nil || !strings.Contains(err.Error(), "bad.rego") {
		t.Fatalf("parse error does not name the file: %v", err)
	}
}
