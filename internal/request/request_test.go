package request_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/scopegate/scopegate/internal/request"
)

func TestDecodeValid(t *testing.T) {
	for _, tc := range []struct {
		name    string
		body    string
		granted []string
		action  string
		method  string
	}{
		{"list", `{"granted_scopes":["user:read","project:write"],"action":"project:launch"}`, []string{"user:read", "project:write"}, "project:launch", ""},
		{"space separated", `{"granted_scopes":"user:read project:write","action":"x"}`, []string{"user:read", "project:write"}, "x", ""},
		{"scope alias", `{"scope":"user:read user:email","action":"x"}`, []string{"user:read", "user:email"}, "x", ""},
		{"empty string", `{"granted_scopes":"","action":"x"}`, []string{}, "x", ""},
		{"absent", `{"action":"x"}`, []string{}, "x", ""},
		{"null", `{"granted_scopes":null,"action":"x"}`, []string{}, "x", ""},
		{"duplicates folded", `{"granted_scopes":["a","a","b"],"action":"x"}`, []string{"a", "b"}, "x", ""},
		{"unknown but well formed", `{"granted_scopes":["openid","https://api.example/x"],"action":"x"}`, []string{"openid", "https://api.example/x"}, "x", ""},
		{"route", `{"granted_scopes":[],"method":"post","path":"/projects/42/launch"}`, []string{}, "", "POST"},
		{"full", `{"subject":"app:bot","client_id":"abc","granted_scopes":["a"],"requested_scopes":"a b","action":"x","resource":{"type":"project","id":"42","owner":"u1","attributes":{"k":1}},"context":{"ip":"1.2.3.4"}}`, []string{"a"}, "x", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in, e := request.DecodeBytes([]byte(tc.body))
			if e != nil {
				t.Fatalf("unexpected error %v", e)
			}
			if !slices.Equal(in.GrantedScopes, tc.granted) || in.GrantedScopes == nil {
				t.Errorf("granted = %#v, want %#v", in.GrantedScopes, tc.granted)
			}
			if in.Action != tc.action || in.Method != tc.method {
				t.Errorf("action/method = %q/%q", in.Action, in.Method)
			}
		})
	}
}

func TestDecodeRejects(t *testing.T) {
	for _, tc := range []struct {
		name, body, field, code, msg string
	}{
		{"not json", `{"action":`, "", "invalid_input", "JSON"},
		{"empty", ``, "", "invalid_input", "empty body"},
		{"array body", `[]`, "(body)", "invalid_input", "must be an object"},
		{"unknown field", `{"action":"x","grantd_scopes":[]}`, "grantd_scopes", "invalid_input", "unknown field"},
		{"wrong type", `{"action":42}`, "action", "invalid_input", "must be a string"},
		{"scope wrong type", `{"action":"x","granted_scopes":7}`, "granted_scopes", "invalid_input", "array of strings"},
		{"scope element type", `{"action":"x","granted_scopes":["a",1]}`, "granted_scopes[1]", "invalid_input", "must be a string"},
		{"space in element", `{"action":"x","granted_scopes":["a b"]}`, "granted_scopes[0]", "invalid_input", "space"},
		{"double space", `{"action":"x","granted_scopes":"a  b"}`, "granted_scopes", "invalid_input", "single spaces"},
		{"trailing space", `{"action":"x","scope":"a "}`, "scope", "invalid_input", "empty scope"},
		{"control char in scope", `{"action":"x","granted_scopes":["a\u0001"]}`, "granted_scopes[0]", "invalid_input", "not allowed"},
		{"quote in scope", `{"action":"x","granted_scopes":["a\"b"]}`, "granted_scopes[0]", "invalid_input", "not allowed"},
		{"absurd scope", `{"action":"x","granted_scopes":["` + strings.Repeat("a", 300) + `"]}`, "granted_scopes[0]", "invalid_input", "longer than"},
		{"too many scopes", `{"action":"x","granted_scopes":"` + strings.TrimSpace(strings.Repeat("a ", 300)) + `"}`, "granted_scopes", "invalid_input", "more than 256"},
		{"both scope fields", `{"action":"x","granted_scopes":[],"scope":""}`, "scope", "invalid_input", "not both"},
		{"requested bad", `{"action":"x","requested_scopes":{"a":1}}`, "requested_scopes", "invalid_input", "array of strings"},
		{"no action", `{"granted_scopes":[]}`, "action", "invalid_input", "missing"},
		{"action and route", `{"action":"x","method":"GET","path":"/a"}`, "action", "invalid_input", "not both"},
		{"method without path", `{"method":"GET"}`, "path", "invalid_input", "missing"},
		{"path without method", `{"path":"/a"}`, "method", "invalid_input", "missing"},
		{"bad method", `{"method":"G E T","path":"/a"}`, "method", "invalid_input", "letters"},
		{"relative path", `{"method":"GET","path":"a/b"}`, "path", "invalid_input", "start with /"},
		{"dot segment", `{"method":"GET","path":"/a/../b"}`, "path", "invalid_input", "dot segment"},
		{"empty segment", `{"method":"GET","path":"/a//b"}`, "path", "invalid_input", "empty segment"},
		{"query in path", `{"method":"GET","path":"/a?b=1"}`, "path", "invalid_input", "query"},
		{"duplicate key", `{"action":"x","action":"y"}`, "action", "invalid_input", "twice"},
		{"nested duplicate", `{"action":"x","context":{"a":1,"a":2}}`, "context.a", "invalid_input", "twice"},
		{"deep nesting", `{"action":"x","context":` + strings.Repeat(`{"a":`, 20) + `1` + strings.Repeat(`}`, 20) + `}`, "context.a.a.a.a.a.a.a", "invalid_input", "deeper"},
		{"two values", `{"action":"x"} {}`, "", "invalid_input", "more than one"},
		{"not utf8", "{\"action\":\"\xff\"}", "", "invalid_input", "UTF-8"},
		{"control in subject", `{"action":"x","subject":"a\nb"}`, "subject", "invalid_input", "control"},
		{"resource unknown field", `{"action":"x","resource":{"kind":"p"}}`, "resource.kind", "invalid_input", "unknown field"},
		{"resource wrong type", `{"action":"x","resource":{"id":4}}`, "resource.id", "invalid_input", "must be a string"},
		{"too large", `{"action":"x","context":{"a":"` + strings.Repeat("a", request.MaxBodyBytes) + `"}}`, "", "body_too_large", "larger than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, e := request.DecodeBytes([]byte(tc.body))
			if e == nil {
				t.Fatal("want an error")
			}
			if e.Field != tc.field || e.Code != tc.code || !strings.Contains(e.Message, tc.msg) {
				t.Errorf("got field=%q code=%q message=%q; want field=%q code=%q message containing %q", e.Field, e.Code, e.Message, tc.field, tc.code, tc.msg)
			}
		})
	}
}

func TestParseScopeString(t *testing.T) {
	got, err := request.ParseScopeString("user:read user:email user:read")
	if err != nil || !slices.Equal(got, []string{"user:read", "user:email"}) {
		t.Fatalf("got %v, %v", got, err)
	}
	for _, bad := range []string{" a", "a ", "a  b", "a\tb", "a\"", "\x00"} {
		if _, err := request.ParseScopeString(bad); err == nil {
			t.Errorf("ParseScopeString(%q) accepted", bad)
		}
	}
}

// FuzzParseScopeString: never panics; what it accepts re-joins to the input
// (modulo duplicates) and every part is a well-formed scope-token.
func FuzzParseScopeString(f *testing.F) {
	for _, s := range []string{"", "user:read", "user:read user:email", "a  b", " a", "a\x00", "ü"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := request.ParseScopeString(s)
		if err != nil {
			return
		}
		for _, p := range got {
			if p == "" || strings.ContainsAny(p, " \"\\") {
				t.Fatalf("accepted bad token %q from %q", p, s)
			}
			if !strings.Contains(" "+s+" ", " "+p+" ") {
				t.Fatalf("token %q not in input %q", p, s)
			}
		}
	})
}

// FuzzDecode: any body gives an input or a located error, never a panic,
// and an accepted body always names an action or a route.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"granted_scopes":["user:read"],"action":"user:read"}`,
		`{"scope":"a b","method":"GET","path":"/x/{id}"}`,
		`{"action":"x","context":{"a":[1,{"b":null}]}}`,
		`{"action":"x","action":"y"}`,
		`[`, `{}`, `null`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		in, e := request.DecodeBytes(body)
		if e != nil {
			if e.Code == "" || e.Message == "" {
				t.Fatalf("error without code or message: %#v", e)
			}
			return
		}
		if in.Action == "" && (in.Method == "" || in.Path == "") {
			t.Fatalf("accepted a body with neither action nor route: %q", body)
		}
		if in.GrantedScopes == nil {
			t.Fatal("granted scopes nil")
		}
		if _, err := in.Value(); err != nil {
			t.Fatalf("accepted input does not convert: %v", err)
		}
	})
}
