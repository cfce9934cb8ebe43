package engine_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/scopegate/scopegate/internal/catalog"
	"github.com/scopegate/scopegate/internal/engine"
	"github.com/scopegate/scopegate/internal/source"
)

// syntheticCatalog has n scopes: resources r0, r1, ... each with read,
// write (includes read), launch and manage (includes all three).
func syntheticCatalog(tb testing.TB, n int) *catalog.Catalog {
	tb.Helper()
	var b strings.Builder
	b.WriteString("version: 1\ndefault: public\nscopes:\n  - {name: public, description: Public.}\n")
	for i := 0; 4*i+1 < n; i++ {
		r := fmt.Sprintf("r%d", i)
		fmt.Fprintf(&b, "  - {name: %s:read, description: Read %s.}\n", r, r)
		fmt.Fprintf(&b, "  - {name: %s:write, description: Write %s., includes: [%s:read]}\n", r, r, r)
		fmt.Fprintf(&b, "  - {name: %s:launch, description: Launch %s., sensitive: true}\n", r, r)
		fmt.Fprintf(&b, "  - {name: %s:manage, description: Manage %s., includes: [%s:write, %s:launch]}\n", r, r, r, r)
	}
	c, err := catalog.Parse("synthetic.yaml", []byte(b.String()))
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// token returns k granted scopes spread over the catalog's resources.
func token(c *catalog.Catalog, k int) []string {
	names := c.Names()[1:]
	out := make([]string, 0, k)
	for i := 0; i < k; i++ {
		out = append(out, names[(i*7919)%len(names)])
	}
	return out
}

// BenchmarkScaling: one uncached decision as the catalog grows (20, 1k, 10k
// scopes) and as tokens carry more scopes (1, 10, 100). The policy only
// looks scopes up by name, so cost should follow the token, not the catalog.
func BenchmarkScaling(b *testing.B) {
	ctx := context.Background()
	for _, size := range []int{20, 1000, 10000} {
		c := syntheticCatalog(b, size)
		src, err := source.FromCatalog(c, "../../policies")
		if err != nil {
			b.Fatal(err)
		}
		e, err := engine.New(ctx, src, engine.WithCacheBytes(0))
		if err != nil {
			b.Fatal(err)
		}
		for _, k := range []int{1, 10, 100} {
			in := engine.Input{GrantedScopes: token(c, k), Action: "r0:launch"}
			b.Run(fmt.Sprintf("catalog=%d/scopes=%d", len(c.Scopes), k), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if d, err := e.DecideInput(ctx, in, engine.Options{}); err != nil || d.Reason == "" {
						b.Fatal(d, err)
					}
				}
			})
		}
	}
}

// TestSyntheticCatalogDecides: the catalogs the benchmark uses decide
// correctly, so the benchmark measures real answers.
func TestSyntheticCatalogDecides(t *testing.T) {
	c := syntheticCatalog(t, 10000)
	if len(c.Scopes) != 10001 {
		t.Fatalf("%d scopes", len(c.Scopes))
	}
	src, err := source.FromCatalog(c, "../../policies")
	if err != nil {
		t.Fatal(err)
	}
	e := newEngine(t, src)
	for _, tc := range []struct {
		scopes []string
		action string
		allow  bool
	}{
		{[]string{"r2499:manage"}, "r2499:read", true},
		{[]string{"r2499:write"}, "r2499:launch", false},
		{[]string{"r17:write", "r18:launch"}, "r18:launch", true},
		{[]string{"r17:write"}, "r18:read", false},
	} {
		d, err := e.DecideInput(context.Background(), engine.Input{GrantedScopes: tc.scopes, Action: tc.action}, engine.Options{})
		if err != nil || d.Allow != tc.allow {
			t.Errorf("%v %s: %+v %v", tc.scopes, tc.action, d, err)
		}
	}
}
