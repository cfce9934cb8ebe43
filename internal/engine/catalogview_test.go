package engine_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/scopegate/scopegate/internal/engine"
)

func TestCatalogView(t *testing.T) {
	e := newEngine(t, repoSource(t))
	v, err := e.Catalog()
	if err != nil {
		t.Fatal(err)
	}
	if v.Len() != 20 || v.DefaultScope() != "public" || v.Version() != 1 {
		t.Fatalf("len %d default %q version %d", v.Len(), v.DefaultScope(), v.Version())
	}
	if names := v.Names(); names[0] != "public" || names[1] != "user:manage" {
		t.Errorf("not in file order: %v", names[:3])
	}
	for _, tc := range []struct {
		name                          string
		includes, includedBy, implies []string
		sensitive, isDefault          bool
	}{
		{"user:read", []string{}, []string{"user:manage", "user:write"}, []string{"user:read"}, false, false},
		{"user:email", []string{}, []string{"user:manage"}, []string{"user:email"}, false, false},
		{"project:manage", []string{"project:read", "project:write", "project:launch", "project:quote"}, []string{},
			[]string{"project:launch", "project:manage", "project:quote", "project:read", "project:write"}, false, false},
		{"project:launch", []string{}, []string{"project:manage"}, []string{"project:launch"}, true, false},
		{"public", []string{}, []string{}, []string{"public"}, false, true},
	} {
		s, ok := v.Lookup(tc.name)
		if !ok {
			t.Fatalf("%s missing", tc.name)
		}
		if !slices.Equal(s.Includes, tc.includes) || !slices.Equal(s.IncludedBy, tc.includedBy) || !slices.Equal(s.Implies, tc.implies) ||
			s.Sensitive != tc.sensitive || s.Default != tc.isDefault || s.Description == "" || s.Resource == "" {
			t.Errorf("%s = %+v", tc.name, s)
		}
	}
	if _, ok := v.Lookup("project:lunch"); ok {
		t.Fatal("unknown scope found")
	}
	if got := v.Suggest("project:lunch"); got != "project:launch" {
		t.Errorf("suggest = %q", got)
	}
	if got := v.Suggest("zzzz"); got != "" {
		t.Errorf("suggest for nonsense = %q", got)
	}
}

func TestCatalogViewRejectsMalformedData(t *testing.T) {
	for _, tc := range []struct{ name, data, want string }{
		{"no scopegate", `{}`, "no scopegate document"},
		{"no catalog", `{"scopegate":{}}`, "no scopegate.catalog"},
		{"scopes not object", `{"scopegate":{"catalog":{"scopes":[]}}}`, "not an object"},
		{"scope mistyped", `{"scopegate":{"catalog":{"default_scope":"a","scopes":{"a":{"description":1,"resource":"a","sensitive":false,"includes":[],"implies":["a"],"satisfied_by":["a"],"order":0}}}}}`, "description is not a string"},
		{"order missing", `{"scopegate":{"catalog":{"default_scope":"a","scopes":{"a":{"description":"d","resource":"a","sensitive":false,"includes":[],"implies":["a"],"satisfied_by":["a"]}}}}}`, "order is not an integer"},
		{"default unknown", `{"scopegate":{"catalog":{"default_scope":"b","scopes":{"a":{"description":"d","resource":"a","sensitive":false,"includes":[],"implies":["a"],"satisfied_by":["a"],"order":0}}}}}`, `default scope "b"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dec := json.NewDecoder(strings.NewReader(tc.data))
			dec.UseNumber()
			var data map[string]any
			if err := dec.Decode(&data); err != nil {
				t.Fatal(err)
			}
			_, err := engine.NewCatalogView(data)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}
