package request_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/scopegate/scopegate/internal/request"
)

func TestDecodeBatch(t *testing.T) {
	ins, e := request.DecodeBatchBytes([]byte(`{"subject":"app:bot","client_id":"c1","scope":"project:write user:read",
		"requested_scopes":["project:manage"],"context":{"ip":"1.2.3.4"},
		"checks":[{"action":"project:launch"},{"method":"post","path":"/projects/1/launch"},{"action":"x","resource":{"type":"project","id":"1"}}]}`))
	if e != nil {
		t.Fatal(e)
	}
	if len(ins) != 3 {
		t.Fatalf("%d inputs", len(ins))
	}
	for i, in := range ins {
		if in.Subject != "app:bot" || in.ClientID != "c1" || !slices.Equal(in.GrantedScopes, []string{"project:write", "user:read"}) ||
			!slices.Equal(in.RequestedScopes, []string{"project:manage"}) || in.Context["ip"] != "1.2.3.4" {
			t.Errorf("check %d: shared fields lost: %+v", i, in)
		}
	}
	if ins[0].Action != "project:launch" || ins[1].Method != "POST" || ins[1].Path != "/projects/1/launch" || ins[2].Resource["id"] != "1" {
		t.Errorf("checks: %+v", ins)
	}
	if ins[0].Resource != nil {
		t.Error("a resource leaked into another check")
	}

	// No scopes: the default applies, as in /v1/decide.
	ins, e = request.DecodeBatchBytes([]byte(`{"checks":[{"action":"public"}]}`))
	if e != nil || ins[0].GrantedScopes == nil || len(ins[0].GrantedScopes) != 0 || ins[0].RequestedScopes != nil {
		t.Fatalf("%+v %v", ins, e)
	}
}

func TestDecodeBatchErrors(t *testing.T) {
	many := make([]string, request.MaxChecks+1)
	for i := range many {
		many[i] = `{"action":"x"}`
	}
	for _, tc := range []struct {
		name, body, field, code string
	}{
		{"not json", `{"checks":`, "", "invalid_input"},
		{"not an object", `[]`, "(body)", "invalid_input"},
		{"no checks", `{"granted_scopes":["a"]}`, "checks", "invalid_input"},
		{"empty checks", `{"checks":[]}`, "checks", "invalid_input"},
		{"checks not a list", `{"checks":{"action":"x"}}`, "checks", "invalid_input"},
		{"too many checks", `{"checks":[` + strings.Join(many, ",") + `]}`, "checks", "invalid_input"},
		{"unknown top-level field", `{"action":"x","checks":[{"action":"x"}]}`, "action", "invalid_input"},
		{"duplicate key", `{"checks":[{"action":"x"}],"checks":[]}`, "checks", "invalid_input"},
		{"check not an object", `{"checks":[{"action":"x"},"project:read"]}`, "checks[1]", "invalid_input"},
		{"check null", `{"checks":[null]}`, "checks[0]", "invalid_input"},
		{"unknown check field", `{"checks":[{"action":"x"},{"action":"x","scope":"a"}]}`, "checks[1].scope", "invalid_input"},
		{"duplicate check key", `{"checks":[{"action":"x","action":"y"}]}`, "checks[0].action", "invalid_input"},
		{"check field mistyped", `{"checks":[{"action":1}]}`, "checks[0].action", "invalid_input"},
		{"check without action", `{"checks":[{"action":"x"},{},{"action":"y"}]}`, "checks[1].action", "invalid_input"},
		{"action and route", `{"checks":[{"action":"x","method":"GET","path":"/x"}]}`, "checks[0].action", "invalid_input"},
		{"route without path", `{"checks":[{"action":"x"},{"action":"y"},{"action":"y"},{"method":"GET"}]}`, "checks[3].path", "invalid_input"},
		{"bad path", `{"checks":[{"method":"GET","path":"/a/../b"}]}`, "checks[0].path", "invalid_input"},
		{"unknown resource field", `{"checks":[{"action":"x","resource":{"kind":"y"}}]}`, "checks[0].resource.kind", "invalid_input"},
		{"resource control char", `{"checks":[{"action":"x","resource":{"id":"a\u0001"}}]}`, "checks[0].resource.id", "invalid_input"},
		{"malformed scope string", `{"scope":"a  b","checks":[{"action":"x"}]}`, "scope", "invalid_input"},
		{"scope list item", `{"granted_scopes":["a",2],"checks":[{"action":"x"}]}`, "granted_scopes[1]", "invalid_input"},
		{"both scope fields", `{"scope":"a","granted_scopes":["a"],"checks":[{"action":"x"}]}`, "scope", "invalid_input"},
		{"requested malformed", `{"requested_scopes":" a","checks":[{"action":"x"}]}`, "requested_scopes", "invalid_input"},
		{"too large", `{"context":{"k":"` + strings.Repeat("x", request.MaxBatchBodyBytes) + `"},"checks":[{"action":"x"}]}`, "", "body_too_large"},
		{"not utf-8", "{\"checks\":[{\"action\":\"\xff\"}]}", "", "invalid_input"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ins, e := request.DecodeBatchBytes([]byte(tc.body))
			if e == nil {
				t.Fatalf("accepted: %+v", ins)
			}
			if e.Field != tc.field || e.Code != tc.code || e.Message == "" {
				t.Fatalf("got %#v, want field %q code %q", e, tc.field, tc.code)
			}
		})
	}
}

func TestDecodeScopeList(t *testing.T) {
	for _, tc := range []struct {
		body string
		want []string
	}{
		{`{"scopes":["user:read","user:email","user:read"]}`, []string{"user:read", "user:email"}},
		{`{"scopes":"user:read user:email"}`, []string{"user:read", "user:email"}},
		{`{"scopes":""}`, []string{}},
		{`{"scopes":[]}`, []string{}},
	} {
		got, e := request.DecodeScopeListBytes([]byte(tc.body))
		if e != nil || got == nil || !slices.Equal(got, tc.want) {
			t.Errorf("%s: got %v, %v", tc.body, got, e)
		}
	}
	for _, tc := range []struct{ body, field string }{
		{`{}`, "scopes"},
		{`{"scopes":null}`, "scopes"},
		{`{"scopes":"a  b"}`, "scopes"},
		{`{"scopes":["a b"]}`, "scopes[0]"},
		{`{"scopes":[1]}`, "scopes[0]"},
		{`{"scopes":{}}`, "scopes"},
		{`{"scopes":[],"extra":1}`, "extra"},
		{`{"scopes":[],"scopes":[]}`, "scopes"},
		{`{"scopes":"` + strings.TrimSpace(strings.Repeat("a ", request.MaxScopes+1)) + `"}`, "scopes"},
		{`["a"]`, "(body)"},
		{``, ""},
	} {
		got, e := request.DecodeScopeListBytes([]byte(tc.body))
		if e == nil || e.Field != tc.field {
			t.Errorf("%s: got %v, %#v; want an error on %q", tc.body, got, e, tc.field)
		}
	}
}

// FuzzDecodeBatch: any body gives inputs or a located error, never a
// panic; accepted checks each name an action or a route.
func FuzzDecodeBatch(f *testing.F) {
	for _, s := range []string{
		`{"scope":"a b","checks":[{"action":"x"},{"method":"GET","path":"/x"}]}`,
		`{"checks":[{"action":"x","resource":{"id":"1"}}]}`,
		`{"checks":[null]}`, `{"checks":[]}`, `[`, `{}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		ins, e := request.DecodeBatchBytes(body)
		if e != nil {
			if e.Code == "" || e.Message == "" {
				t.Fatalf("error without code or message: %#v", e)
			}
			return
		}
		if len(ins) == 0 || len(ins) > request.MaxChecks {
			t.Fatalf("accepted %d checks", len(ins))
		}
		for i, in := range ins {
			if in.Action == "" && (in.Method == "" || in.Path == "") {
				t.Fatalf("check %d has neither action nor route: %q", i, body)
			}
			if _, err := in.Value(); err != nil {
				t.Fatal(fmt.Errorf("check %d does not convert: %w", i, err))
			}
		}
	})
}
