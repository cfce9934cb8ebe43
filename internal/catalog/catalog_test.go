package catalog_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/scopegate/scopegate/internal/catalog"
)

func TestReferenceCatalog(t *testing.T) {
	c, err := catalog.LoadFile("../../scopes.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Default != "public" {
		t.Errorf("default = %q, want public", c.Default)
	}
	// The reference catalog of shared/seed-scopes.md: every scope and what it
	// includes directly, exactly.
	want := map[string][]string{
		"public":                  nil,
		"user:manage":             {"user:read", "user:write", "user:email"},
		"user:read":               nil,
		"user:write":              {"user:read"},
		"user:email":              nil,
		"glossary:manage":         {"glossary:read", "glossary:write"},
		"glossary:read":           nil,
		"glossary:write":          {"glossary:read"},
		"project:manage":          {"project:read", "project:write", "project:launch", "project:quote"},
		"project:read":            nil,
		"project:write":           {"project:read"},
		"project:launch":          nil,
		"project:quote":           nil,
		"discussion:manage":       {"discussion:read", "discussion:write"},
		"discussion:read":         nil,
		"discussion:write":        {"discussion:read"},
		"transaction:read":        nil,
		"preferred_author:manage": {"preferred_author:read", "preferred_author:write"},
		"preferred_author:read":   nil,
		"preferred_author:write":  {"preferred_author:read"},
	}
	if len(c.Scopes) != len(want) {
		t.Fatalf("catalog has %d scopes, want %d", len(c.Scopes), len(want))
	}
	for name, includes := range want {
		s, ok := c.Lookup(name)
		if !ok {
			t.Errorf("scope %s missing", name)
			continue
		}
		if !slices.Equal(s.Includes, includes) {
			t.Errorf("%s includes %v, want %v", name, s.Includes, includes)
		}
		if s.Description == "" {
			t.Errorf("%s has no description", name)
		}
		wantSensitive := name == "project:launch" || name == "transaction:read"
		if s.Sensitive != wantSensitive {
			t.Errorf("%s sensitive = %v, want %v", name, s.Sensitive, wantSensitive)
		}
	}
	for _, tc := range []struct {
		scope, desc string
	}{
		{"project:launch", "debit"},
		{"user:email", "email"},
		{"public", "pricing"},
		{"glossary:manage", "organization"},
	} {
		s, _ := c.Lookup(tc.scope)
		if !strings.Contains(s.Description, tc.desc) {
			t.Errorf("%s description %q does not mention %q", tc.scope, s.Description, tc.desc)
		}
	}
}

func TestClosure(t *testing.T) {
	c, err := catalog.Parse("t.yaml", []byte(`version: 1
default: a
scopes:
  - {name: a, description: A}
  - {name: x:manage, description: M, includes: [x:write, x:launch]}
  - {name: x:write, description: W, includes: [x:read]}
  - {name: x:read, description: R}
  - {name: x:launch, description: L}
`))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		scope       string
		implies     []string
		satisfiedBy []string
	}{
		{"x:manage", []string{"x:launch", "x:manage", "x:read", "x:write"}, []string{"x:manage"}},
		{"x:read", []string{"x:read"}, []string{"x:read", "x:write", "x:manage"}},
		{"x:launch", []string{"x:launch"}, []string{"x:launch", "x:manage"}},
		{"a", []string{"a"}, []string{"a"}},
		{"nope", nil, nil},
	} {
		if got := c.Implies(tc.scope); !slices.Equal(got, tc.implies) {
			t.Errorf("Implies(%s) = %v, want %v", tc.scope, got, tc.implies)
		}
		if got := c.SatisfiedBy(tc.scope); !slices.Equal(got, tc.satisfiedBy) {
			t.Errorf("SatisfiedBy(%s) = %v, want %v", tc.scope, got, tc.satisfiedBy)
		}
	}
	if s, _ := c.Lookup("x:read"); s.Resource != "x" {
		t.Errorf("resource of x:read = %q, want x", s.Resource)
	}
}

func TestValidationErrors(t *testing.T) {
	const head = "version: 1\ndefault: public\nscopes:\n  - {name: public, description: P}\n"
	for _, tc := range []struct {
		name string
		src  string
		want []string // each must appear, in order, as "f.yaml:LINE: ..."
	}{
		{"unknown include", head + "  - {name: a:write, description: W, includes: [a:reed]}\n  - {name: a:read, description: R}\n",
			[]string{`f.yaml:5: scope "a:write" includes unknown scope "a:reed" (did you mean "a:read"?)`}},
		{"cycle", head + "  - {name: a:one, description: 1, includes: [a:two]}\n  - {name: a:two, description: 2, includes: [a:three]}\n  - {name: a:three, description: 3, includes: [a:one]}\n",
			[]string{"f.yaml:5: inclusion cycle: a:one -> a:two -> a:three -> a:one"}},
		{"self include", head + "  - {name: a:one, description: 1, includes: [a:one]}\n",
			[]string{`f.yaml:5: scope "a:one" includes itself`}},
		{"duplicate", head + "  - {name: a:read, description: R}\n  - {name: a:read, description: again}\n",
			[]string{`f.yaml:6: duplicate scope "a:read" (first defined at line 5)`}},
		{"bad names", head + "  - {name: A:Read, description: R}\n  - {name: 'a:b:c', description: R}\n  - {name: 'a: b', description: R}\n",
			[]string{`f.yaml:5: bad scope name "A:Read"`, `f.yaml:6: bad scope name "a:b:c"`, `f.yaml:7: bad scope name "a: b"`}},
		{"missing description", head + "  - name: a:read\n",
			[]string{`f.yaml:5: scope "a:read" has no description`}},
		{"unknown key", head + "  - {name: a:read, description: R, grants: [x]}\n",
			[]string{`f.yaml:5: unknown key "grants" in scope`}},
		{"unknown default", "version: 1\ndefault: pubic\nscopes:\n  - {name: public, description: P}\n",
			[]string{`f.yaml:2: default scope "pubic" is not in the catalog (did you mean "public"?)`}},
		{"manage misses a scope", head + "  - {name: a:manage, description: M, includes: [a:read]}\n  - {name: a:read, description: R}\n  - {name: a:launch, description: L}\n",
			[]string{"f.yaml:5: a:manage must include every a scope; missing a:launch"}},
		{"bad version", "version: 2\ndefault: public\nscopes:\n  - {name: public, description: P}\n",
			[]string{"f.yaml:1: unsupported catalog version 2"}},
		{"missing keys", "version: 1\n", []string{`f.yaml:1: missing key "default"`, `f.yaml:1: missing key "scopes"`}},
		{"not yaml", "version: [1\n", []string{"f.yaml:"}},
		{"empty", "", []string{"f.yaml:1: empty catalog"}},
		{"duplicate include", head + "  - {name: a:write, description: W, includes: [a:read, a:read]}\n  - {name: a:read, description: R}\n",
			[]string{`f.yaml:5: "a:write" lists "a:read" twice in includes`}},
		{"sensitive not bool", head + "  - {name: a:read, description: R, sensitive: yes}\n",
			[]string{"f.yaml:5: sensitive must be true or false"}},
		{"foreign scope in the catalog", "version: 1\ndefault: public\nforeign:\n  names: [openid]\n  prefixes: [\"a:\"]\nscopes:\n  - {name: public, description: P}\n  - {name: a:read, description: R}\n  - {name: openid, description: O}\n",
			[]string{`f.yaml:8: scope "a:read" is declared foreign too`, `f.yaml:9: scope "openid" is declared foreign too`}},
		{"foreign shape", "version: 1\ndefault: public\nforeign:\n  names: openid\n  other: [x]\nscopes:\n  - {name: public, description: P}\n",
			[]string{`f.yaml:4: foreign names must be a list`, `f.yaml:5: unknown key "other" in foreign`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := catalog.Parse("f.yaml", []byte(tc.src))
			if err == nil {
				t.Fatal("want an error")
			}
			var ps catalog.Problems
			if !errors.As(err, &ps) {
				t.Fatalf("error %T is not catalog.Problems", err)
			}
			msg := err.Error()
			pos := 0
			for _, w := range tc.want {
				i := strings.Index(msg[pos:], w)
				if i < 0 {
					t.Fatalf("error\n%s\ndoes not contain %q (after offset %d)", msg, w, pos)
				}
				pos += i + len(w)
			}
		})
	}
}

// TestEveryErrorInOneRun: structure, references, the default, cycles and
// the manage rule are all reported at once, each at its own line.
func TestEveryErrorInOneRun(t *testing.T) {
	src := `version: 1
default: pubic
scopes:
  - {name: public, description: P}
  - {name: a:write, description: W, includes: [a:reed]}
  - {name: a:read, description: R}
  - {name: b:one, description: 1, includes: [b:two]}
  - {name: b:two, description: 2, includes: [b:one]}
  - {name: c:one, description: 1, includes: [c:two]}
  - {name: c:two, description: 2, includes: [c:one]}
  - {name: a:manage, description: M, includes: [a:read]}
  - {name: Bad:Name, description: X}
  - {name: a:read, description: again}
  - {name: a:quote, description: Q, grants: [x]}
`
	_, err := catalog.Parse("f.yaml", []byte(src))
	if err == nil {
		t.Fatal("want an error")
	}
	want := []string{
		`f.yaml:2: default scope "pubic" is not in the catalog (did you mean "public"?)`,
		`f.yaml:5: scope "a:write" includes unknown scope "a:reed" (did you mean "a:read"?)`,
		`f.yaml:7: inclusion cycle: b:one -> b:two -> b:one`,
		`f.yaml:9: inclusion cycle: c:one -> c:two -> c:one`,
		`f.yaml:11: a:manage must include every a scope; missing a:write, a:quote`,
		`f.yaml:12: bad scope name "Bad:Name"`,
		`f.yaml:13: duplicate scope "a:read" (first defined at line 6)`,
		`f.yaml:14: unknown key "grants" in scope`,
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != len(want) {
		t.Fatalf("want %d problems, got %d:\n%s", len(want), len(lines), err)
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("problem %d:\n got %s\nwant %s", i, lines[i], w)
		}
	}
}

func TestValidName(t *testing.T) {
	for name, want := range map[string]bool{
		"public": true, "user:read": true, "preferred_author:manage": true, "a1:b2": true,
		"": false, "User:read": false, "user:": false, ":read": false, "a:b:c": false,
		"user read": false, "1a:b": false, strings.Repeat("a", 129): false,
	} {
		if got := catalog.ValidName(name); got != want {
			t.Errorf("ValidName(%q) = %v, want %v", name, got, want)
		}
	}
}

// FuzzParse: whatever the bytes, Parse returns a catalog or located problems,
// and never panics.
func FuzzParse(f *testing.F) {
	f.Add([]byte("version: 1\ndefault: public\nscopes:\n  - {name: public, description: P}\n"))
	f.Add([]byte("version: 1\ndefault: a\nscopes:\n  - {name: a, description: A, includes: [a]}\n"))
	f.Add([]byte("scopes: [{name: x:y, includes: [x:z]}, {name: x:z, includes: [x:y]}]"))
	f.Add([]byte("- a\n- b"))
	f.Fuzz(func(t *testing.T, src []byte) {
		c, err := catalog.Parse("fuzz.yaml", src)
		if err != nil {
			var ps catalog.Problems
			if !errors.As(err, &ps) || len(ps) == 0 {
				t.Fatalf("error without located problems: %v", err)
			}
			return
		}
		for _, s := range c.Scopes {
			if !slices.Contains(c.Implies(s.Name), s.Name) {
				t.Fatalf("%s does not imply itself", s.Name)
			}
		}
	})
}
