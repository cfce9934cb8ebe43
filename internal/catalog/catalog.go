// Package catalog reads the scope catalog (scopes.yaml), validates it with
// errors that point at file:line, and computes which scopes each scope implies.
package catalog

import (
	"fmt"
	"os"
	"sort"
	"strings"
)

// Scope is one OAuth scope of the catalog.
type Scope struct {
	Name        string
	Description string
	Resource    string
	Sensitive   bool
	// Includes lists the scopes this one grants directly, as written.
	Includes []string
	// Line is where the scope's entry starts in the source file.
	Line int
}

// Catalog is a validated scope catalog with its inclusion closure.
type Catalog struct {
	File    string
	Version int
	Default string
	Scopes  []Scope
	// Foreign are scopes a token may carry that this catalog does not
	// govern (OIDC's openid, another API's scopes), by name or by prefix:
	// they confer nothing and are not unknown.
	Foreign         []string
	ForeignPrefixes []string

	index map[string]int
	// implies[s]: every scope s confers, s included, sorted by name.
	implies map[string][]string
	// satisfiedBy[s]: every scope that confers s, s included, narrowest first.
	satisfiedBy map[string][]string
}

// LoadFile reads and validates the catalog at path.
func LoadFile(path string) (*Catalog, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read catalog: %w", err)
	}
	return Parse(path, src)
}

// Lookup returns the scope called name.
func (c *Catalog) Lookup(name string) (Scope, bool) {
	i, ok := c.index[name]
	if !ok {
		return Scope{}, false
	}
	return c.Scopes[i], true
}

// Implies returns every scope that name confers, itself included, sorted by
// name. It returns nil for an unknown scope.
func (c *Catalog) Implies(name string) []string { return c.implies[name] }

// SatisfiedBy returns every scope that confers name, itself included,
// narrowest (fewest implied scopes) first, ties by name.
func (c *Catalog) SatisfiedBy(name string) []string { return c.satisfiedBy[name] }

// Names returns the scope names in file order.
func (c *Catalog) Names() []string {
	out := make([]string, len(c.Scopes))
	for i, s := range c.Scopes {
		out[i] = s.Name
	}
	return out
}

// computeClosure fills implies and satisfiedBy. The graph must be acyclic
// and every include known (Parse calls it only on a valid catalog).
func (c *Catalog) computeClosure() {
	c.implies = make(map[string][]string, len(c.Scopes))
	var visit func(name string) []string
	visit = func(name string) []string {
		if got, ok := c.implies[name]; ok {
			return got
		}
		set := map[string]struct{}{name: {}}
		for _, inc := range c.Scopes[c.index[name]].Includes {
			for _, s := range visit(inc) {
				set[s] = struct{}{}
			}
		}
		out := make([]string, 0, len(set))
		for s := range set {
			out = append(out, s)
		}
		sort.Strings(out)
		c.implies[name] = out
		return out
	}
	for _, s := range c.Scopes {
		visit(s.Name)
	}

	c.satisfiedBy = make(map[string][]string, len(c.Scopes))
	for _, s := range c.Scopes {
		for _, implied := range c.implies[s.Name] {
			c.satisfiedBy[implied] = append(c.satisfiedBy[implied], s.Name)
		}
	}
	for name, list := range c.satisfiedBy {
		sort.Slice(list, func(i, j int) bool {
			a, b := len(c.implies[list[i]]), len(c.implies[list[j]])
			if a != b {
				return a < b
			}
			return list[i] < list[j]
		})
		c.satisfiedBy[name] = list
	}
}

// resourceOf is the part of a scope name before the colon, or the whole
// name for a bare word such as "public".
func resourceOf(name string) string {
	if res, _, ok := strings.Cut(name, ":"); ok {
		return res
	}
	return name
}
