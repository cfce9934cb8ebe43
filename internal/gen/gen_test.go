package gen_test

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/scopegate/scopegate/internal/catalog"
	"github.com/scopegate/scopegate/internal/gen"
)

var update = flag.Bool("update", false, "rewrite golden files")

func TestGolden(t *testing.T) {
	for _, tc := range []struct{ catalog, golden string }{
		{"testdata/small.yaml", "testdata/small.golden.json"},
		{"../../scopes.yaml", "testdata/reference.golden.json"},
	} {
		t.Run(filepath.Base(tc.golden), func(t *testing.T) {
			c, err := catalog.LoadFile(tc.catalog)
			if err != nil {
				t.Fatal(err)
			}
			got, err := gen.JSON(c)
			if err != nil {
				t.Fatal(err)
			}
			if *update {
				if err := os.WriteFile(tc.golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(tc.golden)
			if err != nil {
				t.Fatalf("%v (run go test ./internal/gen -update)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("generated data differs from %s; run go test ./internal/gen -update and review the diff", tc.golden)
			}
			// Deterministic: a second run from a fresh parse is byte-identical.
			c2, _ := catalog.LoadFile(tc.catalog)
			again, _ := gen.JSON(c2)
			if !bytes.Equal(got, again) {
				t.Error("two generations of the same catalog differ")
			}
		})
	}
}
