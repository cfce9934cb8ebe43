package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"

	"github.com/scopegate/scopegate/internal/catalog"
)

// ScopeInfo is one catalog scope as the policies see it in
// data.scopegate.catalog, plus the scopes that include it directly.
type ScopeInfo struct {
	Name        string   `json:"name"`
	Description string   `json:"description"`
	Resource    string   `json:"resource"`
	Sensitive   bool     `json:"sensitive"`
	Includes    []string `json:"includes"`
	IncludedBy  []string `json:"included_by"`
	Implies     []string `json:"implies"`
	SatisfiedBy []string `json:"satisfied_by"`
	Default     bool     `json:"default"`
	// Order is the position in scopes.yaml (listings follow it).
	Order int `json:"-"`
}

// CatalogView is a read-only view of the catalog an engine evaluates,
// built from its data document (data.scopegate.catalog), so it exists
// whether the policy came from scopes.yaml or from a bundle. Callers must
// not modify the slices it returns.
type CatalogView struct {
	version      int
	defaultScope string
	scopes       map[string]*ScopeInfo
	// names in catalog order (order, then name).
	names []string
}

// Catalog returns the view of the catalog this engine was built with, or an
// error saying why its data holds no readable catalog.
func (e *Engine) Catalog() (*CatalogView, error) {
	if e == nil {
		return nil, errors.New("engine: no policy loaded")
	}
	return e.catalog, e.catalogErr
}

// NewCatalogView reads data.scopegate.catalog out of a whole data document
// (as source.Source.Data holds it).
func NewCatalogView(data map[string]any) (*CatalogView, error) {
	sg, ok := data["scopegate"].(map[string]any)
	if !ok {
		return nil, errors.New("catalog view: data has no scopegate document")
	}
	cat, ok := sg["catalog"].(map[string]any)
	if !ok {
		return nil, errors.New("catalog view: data has no scopegate.catalog")
	}
	raw, ok := cat["scopes"].(map[string]any)
	if !ok {
		return nil, errors.New("catalog view: catalog.scopes is not an object")
	}
	v := &CatalogView{scopes: make(map[string]*ScopeInfo, len(raw)), names: make([]string, 0, len(raw))}
	v.version, _ = toInt(cat["version"])
	v.defaultScope, _ = cat["default_scope"].(string)
	for name, x := range raw {
		m, ok := x.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("catalog view: scope %q is not an object", name)
		}
		s := &ScopeInfo{Name: name, IncludedBy: []string{}, Default: name == v.defaultScope}
		var errs []error
		str := func(key string) string {
			x, ok := m[key].(string)
			if !ok {
				errs = append(errs, fmt.Errorf("%s is not a string", key))
			}
			return x
		}
		list := func(key string) []string {
			arr, ok := m[key].([]any)
			if !ok {
				errs = append(errs, fmt.Errorf("%s is not a list", key))
				return []string{}
			}
			out := make([]string, 0, len(arr))
			for _, y := range arr {
				n, ok := y.(string)
				if !ok {
					errs = append(errs, fmt.Errorf("%s holds a non-string", key))
					continue
				}
				out = append(out, n)
			}
			return out
		}
		s.Description = str("description")
		s.Resource = str("resource")
		s.Sensitive, ok = m["sensitive"].(bool)
		if !ok {
			errs = append(errs, errors.New("sensitive is not a boolean"))
		}
		s.Includes = list("includes")
		s.Implies = list("implies")
		s.SatisfiedBy = list("satisfied_by")
		if s.Order, ok = toInt(m["order"]); !ok {
			errs = append(errs, errors.New("order is not an integer"))
		}
		if err := errors.Join(errs...); err != nil {
			return nil, fmt.Errorf("catalog view: scope %q: %w", name, err)
		}
		v.scopes[name] = s
		v.names = append(v.names, name)
	}
	for _, name := range v.names {
		for _, inc := range v.scopes[name].Includes {
			if t, ok := v.scopes[inc]; ok {
				t.IncludedBy = append(t.IncludedBy, name)
			}
		}
	}
	sort.Slice(v.names, func(i, j int) bool {
		a, b := v.scopes[v.names[i]], v.scopes[v.names[j]]
		if a.Order != b.Order {
			return a.Order < b.Order
		}
		return a.Name < b.Name
	})
	for _, s := range v.scopes {
		slices.SortFunc(s.IncludedBy, func(a, b string) int { return v.scopes[a].Order - v.scopes[b].Order })
	}
	if v.defaultScope != "" && v.scopes[v.defaultScope] == nil {
		return nil, fmt.Errorf("catalog view: default scope %q is not in the catalog", v.defaultScope)
	}
	return v, nil
}

func toInt(x any) (int, bool) {
	switch n := x.(type) {
	case json.Number:
		i, err := n.Int64()
		return int(i), err == nil
	case float64:
		return int(n), n == float64(int(n))
	case int:
		return n, true
	case int64:
		return int(n), true
	}
	return 0, false
}

// Version is the catalog schema version.
func (v *CatalogView) Version() int { return v.version }

// DefaultScope is the scope a token naming none gets.
func (v *CatalogView) DefaultScope() string { return v.defaultScope }

// Len is the number of scopes.
func (v *CatalogView) Len() int { return len(v.names) }

// Names lists the scope names in catalog order.
func (v *CatalogView) Names() []string { return v.names }

// Lookup returns the scope called name.
func (v *CatalogView) Lookup(name string) (*ScopeInfo, bool) {
	s, ok := v.scopes[name]
	return s, ok
}

// Scopes returns every scope in catalog order.
func (v *CatalogView) Scopes() []*ScopeInfo {
	out := make([]*ScopeInfo, len(v.names))
	for i, n := range v.names {
		out[i] = v.scopes[n]
	}
	return out
}

// Suggest names a catalog scope close to an unknown name, or "".
func (v *CatalogView) Suggest(name string) string { return catalog.Closest(name, v.names) }
