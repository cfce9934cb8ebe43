// Package gen turns a validated scope catalog into the Rego data document
// the policies read as data.scopegate.catalog.
package gen

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/scopegate/scopegate/internal/catalog"
)

// DataPath is where the catalog lives in OPA's data tree.
var DataPath = []string{"scopegate", "catalog"}

// BundleDataFile is the generated file's path relative to a bundle root.
// A data.json at the root carries its full path inside the document, so the
// same file loads unchanged with `opa eval -d`, `opa test` and as a bundle.
const BundleDataFile = "data.json"

// Scope is the generated form of one catalog scope.
type Scope struct {
	Description string   `json:"description"`
	Resource    string   `json:"resource"`
	Sensitive   bool     `json:"sensitive"`
	Includes    []string `json:"includes"`
	// Implies: every scope this one confers, itself included (the closure).
	Implies []string `json:"implies"`
	// SatisfiedBy: every scope conferring this one, narrowest first.
	SatisfiedBy []string `json:"satisfied_by"`
	// Order is the position in scopes.yaml, for listings that follow the file.
	Order int `json:"order"`
}

// Catalog is the generated document at data.scopegate.catalog.
type Catalog struct {
	Version      int              `json:"version"`
	DefaultScope string           `json:"default_scope"`
	Scopes       map[string]Scope `json:"scopes"`
	// Foreign: scopes tokens may carry that the catalog does not govern.
	Foreign Foreign `json:"foreign"`
}

// Foreign is the generated form of the catalog's foreign scopes.
type Foreign struct {
	Names    []string `json:"names"`
	Prefixes []string `json:"prefixes"`
}

// Build converts c into its generated form.
func Build(c *catalog.Catalog) Catalog {
	out := Catalog{Version: c.Version, DefaultScope: c.Default, Scopes: make(map[string]Scope, len(c.Scopes)),
		Foreign: Foreign{Names: nonNil(c.Foreign), Prefixes: nonNil(c.ForeignPrefixes)}}
	for i, s := range c.Scopes {
		out.Scopes[s.Name] = Scope{
			Description: s.Description,
			Resource:    s.Resource,
			Sensitive:   s.Sensitive,
			Includes:    nonNil(s.Includes),
			Implies:     c.Implies(s.Name),
			SatisfiedBy: c.SatisfiedBy(s.Name),
			Order:       i,
		}
	}
	return out
}

// Document returns the whole data document, rooted at data.
func Document(c *catalog.Catalog) map[string]any {
	return map[string]any{DataPath[0]: map[string]any{DataPath[1]: Build(c)}}
}

// JSON renders the data document deterministically: encoding/json sorts map
// keys, and slices are already in a fixed order.
func JSON(c *catalog.Catalog) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(Document(c)); err != nil {
		return nil, fmt.Errorf("encode catalog data: %w", err)
	}
	return buf.Bytes(), nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
