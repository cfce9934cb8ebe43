package scopeset_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/scopegate/scopegate/internal/catalog"
	"github.com/scopegate/scopegate/internal/engine"
	"github.com/scopegate/scopegate/internal/gen"
	"github.com/scopegate/scopegate/internal/policycheck"
	"github.com/scopegate/scopegate/internal/scopeset"
	"github.com/scopegate/scopegate/internal/source"
)

// largeCatalog writes a catalog of 1 + 4*resources scopes: public, then for
// each resource rN: read, write (includes read), launch (sensitive) and
// manage (includes the other three).
func largeCatalog(t *testing.T, dir string, resources int) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("version: 1\ndefault: public\nscopes:\n  - name: public\n    description: Public information.\n")
	for i := range resources {
		r := fmt.Sprintf("r%d", i)
		fmt.Fprintf(&b, "  - name: %s:read\n    description: Read %s.\n", r, r)
		fmt.Fprintf(&b, "  - name: %s:write\n    description: Read and write %s.\n    includes: [%s:read]\n", r, r, r)
		fmt.Fprintf(&b, "  - name: %s:launch\n    description: Launch %s (spends money).\n    sensitive: true\n", r, r)
		fmt.Fprintf(&b, "  - name: %s:manage\n    description: Full access to %s.\n    includes: [%s:read, %s:write, %s:launch]\n", r, r, r, r, r)
	}
	p := filepath.Join(dir, "scopes.yaml")
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// largeActions is an action table over the large catalog.
const largeActions = `package scopegate.actions

named := {
	"r42.launch": {"any_of": ["r42:launch"], "description": "Launch r42"},
	"r2499.edit": {"any_of": ["r2499:write"], "description": "Edit r2499"},
	"r7.audit": {"any_of": ["r7:read", "r8:read"], "description": "Read r7 or r8"},
}

routes := [
	{"method": "POST", "path": "/r42/{id}/launch", "action": "r42.launch"},
	{"method": "PUT", "path": "/r2499/{id}", "action": "r2499.edit"},
	{"method": "GET", "path": "/r1000/{id}", "action": "r1000:read"},
]
`

// TestTenThousandScopes: a generated catalog of 10,001 scopes parses,
// validates, generates, compiles and decides correctly, its catalog view and
// normalisation answer, and a policy naming a scope it lacks is caught.
func TestTenThousandScopes(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a 10k-scope catalog")
	}
	dir := t.TempDir()
	path := largeCatalog(t, dir, 2500)
	ctx := context.Background()

	began := time.Now()
	c, err := catalog.LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	parsed := time.Since(began)
	if len(c.Scopes) != 10001 {
		t.Fatalf("%d scopes", len(c.Scopes))
	}
	if got := c.SatisfiedBy("r1234:read"); !slices.Equal(got, []string{"r1234:read", "r1234:write", "r1234:manage"}) {
		t.Fatalf("satisfied_by(r1234:read) = %v", got)
	}
	if _, err := gen.JSON(c); err != nil {
		t.Fatal(err)
	}

	src, err := source.FromFiles(path, "../../policies")
	if err != nil {
		t.Fatal(err)
	}
	for name := range src.Modules {
		if filepath.Base(name) == "actions.rego" {
			src.Modules[name] = largeActions
		}
	}
	if problems, err := policycheck.Check(ctx, src); err != nil || len(problems) > 0 {
		t.Fatalf("policy check: %v %v", err, problems)
	}
	began = time.Now()
	eng, err := engine.New(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	compiled := time.Since(began)
	t.Logf("10,001 scopes: parse+validate %v, engine.New %v", parsed, compiled)

	for _, tc := range []struct {
		name      string
		in        engine.Input
		reason    string
		narrowest string
		missing   []string
	}{
		{"manage confers launch", engine.Input{GrantedScopes: []string{"r1234:manage"}, Action: "r1234:launch"}, "allowed", "r1234:launch", []string{}},
		{"write confers read", engine.Input{GrantedScopes: []string{"r0:write"}, Action: "r0:read"}, "allowed", "r0:read", []string{}},
		{"write does not confer launch", engine.Input{GrantedScopes: []string{"r1234:write"}, Action: "r1234:launch"}, "missing_scope", "r1234:launch", []string{"r1234:launch"}},
		{"no crossing resources", engine.Input{GrantedScopes: []string{"r1234:manage"}, Action: "r1235:read"}, "missing_scope", "r1235:read", []string{"r1235:read"}},
		{"last resource", engine.Input{GrantedScopes: []string{"r2499:manage"}, Method: "PUT", Path: "/r2499/9"}, "allowed", "r2499:write", []string{}},
		{"named via route", engine.Input{GrantedScopes: []string{"r42:write"}, Method: "POST", Path: "/r42/1/launch"}, "missing_scope", "r42:launch", []string{"r42:launch"}},
		{"any of two resources", engine.Input{GrantedScopes: []string{"r8:write"}, Action: "r7.audit"}, "allowed", "r7:read", []string{}},
		{"scope route", engine.Input{GrantedScopes: []string{"r1000:read"}, Method: "GET", Path: "/r1000/x"}, "allowed", "r1000:read", []string{}},
		{"beyond the catalog", engine.Input{GrantedScopes: []string{"r2500:read"}, Action: "r1:read"}, "unknown_scope", "r1:read", []string{}},
		{"no scopes", engine.Input{GrantedScopes: []string{}, Action: "r1:read"}, "no_scopes", "r1:read", []string{"r1:read"}},
		{"narrowed", engine.Input{GrantedScopes: []string{"r5:read"}, RequestedScopes: []string{"r5:manage"}, Action: "r5:write"}, "missing_scope", "r5:write", []string{"r5:write"}},
	} {
		d, err := eng.DecideInput(ctx, tc.in, engine.Options{})
		if err != nil || d.Reason != tc.reason || d.Narrowest != tc.narrowest || !slices.Equal(d.Missing, tc.missing) {
			t.Errorf("%s: reason %s narrowest %q missing %v (%v); want %s %q %v\nexplain %q", tc.name, d.Reason, d.Narrowest, d.Missing, err, tc.reason, tc.narrowest, tc.missing, d.Explain)
		}
	}

	v, err := eng.Catalog()
	if err != nil {
		t.Fatal(err)
	}
	if v.Len() != 10001 || v.Names()[10000] != "r2499:manage" {
		t.Fatalf("view: %d scopes", v.Len())
	}
	if s, _ := v.Lookup("r2499:read"); !slices.Equal(s.IncludedBy, []string{"r2499:write", "r2499:manage"}) {
		t.Errorf("included_by(r2499:read) = %v", s.IncludedBy)
	}
	if got := v.Suggest("r2499:raed"); got != "r2499:read" {
		t.Errorf("suggest = %q", got)
	}
	r := scopeset.Normalize(v, []string{"r7:manage", "r7:read", "r8:write", "r8:read", "r9999:read"})
	if !slices.Equal(r.Minimal, []string{"r7:manage", "r8:write"}) || len(r.Unknown) != 1 || len(r.OverBroad) != 1 ||
		len(r.Sensitive) != 1 || r.Sensitive[0].Scope != "r7:launch" {
		t.Errorf("normalize: %+v", r)
	}

	// Renaming a scope an action uses is caught before anything serves.
	src.Modules["extra.rego"] = "package scopegate.actions\n\nextra := true\n"
	for name := range src.Modules {
		if filepath.Base(name) == "actions.rego" {
			src.Modules[name] = strings.Replace(largeActions, `["r2499:write"]`, `["r2500:write"]`, 1)
		}
	}
	problems, err := policycheck.Check(ctx, src)
	if err != nil || len(problems) != 1 || !strings.Contains(problems[0].Msg, `named action "r2499.edit" requires scope "r2500:write"`) {
		t.Fatalf("renamed scope: %v %v", err, problems)
	}
}
