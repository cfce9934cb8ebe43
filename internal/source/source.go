// Package source gathers what the engine evaluates: the policy modules and
// the catalog data, from the repo's files (scopes.yaml + policies/).
package source

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/util"

	"github.com/scopegate/scopegate/internal/catalog"
	"github.com/scopegate/scopegate/internal/gen"
)

// Source is a set of Rego modules plus the data document they read.
type Source struct {
	// Modules maps a file name to Rego source, tests excluded.
	Modules map[string]string
	// Tests maps a file name to a *_test.rego module.
	Tests map[string]string
	// Data is the whole data document (data.scopegate.catalog inside).
	Data map[string]any
	// Catalog is the parsed catalog when the source came from scopes.yaml.
	Catalog *catalog.Catalog
	// Revision identifies the content: the same inputs give the same revision.
	Revision string
}

// FromFiles reads the catalog and every .rego file directly in policiesDir.
func FromFiles(catalogPath, policiesDir string) (*Source, error) {
	cat, err := catalog.LoadFile(catalogPath)
	if err != nil {
		return nil, err
	}
	return FromCatalog(cat, policiesDir)
}

// FromCatalog pairs an already parsed catalog with the policies in
// policiesDir.
func FromCatalog(cat *catalog.Catalog, policiesDir string) (*Source, error) {
	data, err := gen.JSON(cat)
	if err != nil {
		return nil, err
	}
	src := &Source{Modules: map[string]string{}, Tests: map[string]string{}, Catalog: cat}
	if err := util.UnmarshalJSON(data, &src.Data); err != nil {
		return nil, fmt.Errorf("decode generated catalog data: %w", err)
	}

	files, err := filepath.Glob(filepath.Join(policiesDir, "*.rego"))
	if err != nil {
		return nil, fmt.Errorf("list policies: %w", err)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no .rego files in %s", policiesDir)
	}
	sort.Strings(files)
	h := sha256.New()
	h.Write(data)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("read policy: %w", err)
		}
		fmt.Fprintf(h, "\x00%s\x00", filepath.Base(f))
		h.Write(b)
		if strings.HasSuffix(f, "_test.rego") {
			src.Tests[f] = string(b)
		} else {
			src.Modules[f] = string(b)
		}
	}
	src.Revision = "sha256-" + hex.EncodeToString(h.Sum(nil))[:16]
	return src, nil
}

// Module is one parsed Rego file of a source.
type Module struct {
	Name   string
	Parsed *ast.Module
}

// Parse parses the source's modules as Rego v1, sorted by file name so
// compilation order (and error order) is stable; withTests adds the
// *_test.rego modules.
func (s *Source) Parse(withTests bool) ([]Module, error) {
	sets := []map[string]string{s.Modules}
	if withTests {
		sets = append(sets, s.Tests)
	}
	var out []Module
	for _, set := range sets {
		for name, text := range set {
			m, err := ast.ParseModuleWithOpts(name, text, ast.ParserOptions{RegoVersion: ast.RegoV1})
			if err != nil {
				return nil, fmt.Errorf("parse policy: %w", err)
			}
			out = append(out, Module{Name: name, Parsed: m})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
