package server_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
)

type scopeJSON struct {
	Name        string   `json:"name"`
	Description string   `json:"description"`
	Resource    string   `json:"resource"`
	Sensitive   bool     `json:"sensitive"`
	Default     bool     `json:"default"`
	Includes    []string `json:"includes"`
	IncludedBy  []string `json:"included_by"`
	Implies     []string `json:"implies"`
	SatisfiedBy []string `json:"satisfied_by"`
}

type errorJSON struct {
	Error *struct {
		Code, Message, Field string
	} `json:"error"`
}

// fetch does one request and decodes the answer strictly into out (the
// contract has no fields the test does not know).
func fetch(t *testing.T, method, url, body string, out any) int {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s %s: content type %q", method, url, ct)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if resp.StatusCode == http.StatusOK {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(out); err != nil {
		t.Fatalf("%s %s: decode %s: %v", method, url, raw, err)
	}
	return resp.StatusCode
}

func TestListScopes(t *testing.T) {
	eng := repoEngine(t)
	url := start(t, eng, &recordingLog{})
	var list struct {
		BundleRevision string      `json:"bundle_revision"`
		Version        int         `json:"version"`
		DefaultScope   string      `json:"default_scope"`
		Count          int         `json:"count"`
		Scopes         []scopeJSON `json:"scopes"`
	}
	if status := fetch(t, "GET", url+"/v1/scopes", "", &list); status != 200 {
		t.Fatalf("status %d", status)
	}
	if list.Count != 20 || len(list.Scopes) != 20 || list.DefaultScope != "public" || list.Version != 1 || list.BundleRevision != eng.Revision() {
		t.Fatalf("got %d scopes, default %q, version %d, revision %q", len(list.Scopes), list.DefaultScope, list.Version, list.BundleRevision)
	}
	if first := list.Scopes[0]; first.Name != "public" || !first.Default || first.Description == "" {
		t.Errorf("first scope %+v", first)
	}
	var manage scopeJSON
	for _, s := range list.Scopes {
		if s.Name == "user:manage" {
			manage = s
		}
	}
	if !slices.Equal(manage.Includes, []string{"user:read", "user:write", "user:email"}) || len(manage.IncludedBy) != 0 {
		t.Errorf("user:manage = %+v", manage)
	}

	for _, tc := range []struct {
		query string
		want  []string
	}{
		{"?sensitive=true", []string{"project:launch", "transaction:read"}},
		{"?resource=user", []string{"user:manage", "user:read", "user:write", "user:email"}},
		{"?resource=user&sensitive=true", []string{}},
		{"?resource=nothing", []string{}},
	} {
		list.Scopes = nil
		if status := fetch(t, "GET", url+"/v1/scopes"+tc.query, "", &list); status != 200 {
			t.Fatalf("%s: status %d", tc.query, status)
		}
		got := []string{}
		for _, s := range list.Scopes {
			got = append(got, s.Name)
		}
		if !slices.Equal(got, tc.want) || list.Count != len(tc.want) {
			t.Errorf("%s: got %v (count %d), want %v", tc.query, got, list.Count, tc.want)
		}
	}

	for _, tc := range []struct{ query, field string }{
		{"?sensitive=yes", "sensitive"},
		{"?resource=a&resource=b", "resource"},
		{"?name=user:read", "name"},
	} {
		var e errorJSON
		if status := fetch(t, "GET", url+"/v1/scopes"+tc.query, "", &e); status != 400 || e.Error == nil || e.Error.Field != tc.field {
			t.Errorf("%s: status %d, %+v", tc.query, status, e.Error)
		}
	}
}

func TestShowScope(t *testing.T) {
	eng := repoEngine(t)
	url := start(t, eng, &recordingLog{})
	var s struct {
		BundleRevision string `json:"bundle_revision"`
		scopeJSON
	}
	if status := fetch(t, "GET", url+"/v1/scopes/user:read", "", &s); status != 200 {
		t.Fatalf("status %d", status)
	}
	if s.Name != "user:read" || s.BundleRevision != eng.Revision() || s.Resource != "user" ||
		!slices.Equal(s.IncludedBy, []string{"user:manage", "user:write"}) ||
		!slices.Equal(s.SatisfiedBy, []string{"user:read", "user:write", "user:manage"}) ||
		!slices.Equal(s.Implies, []string{"user:read"}) || len(s.Includes) != 0 {
		t.Fatalf("got %+v", s)
	}
	// A scope name may be percent-encoded in the path.
	if status := fetch(t, "GET", url+"/v1/scopes/project%3Alaunch", "", &s); status != 200 || s.Name != "project:launch" || !s.Sensitive {
		t.Fatalf("status %d, %+v", status, s)
	}

	for _, tc := range []struct {
		path, code, msg string
		status          int
	}{
		{"/v1/scopes/project:lunch", "unknown_scope", `(did you mean "project:launch"?)`, 404},
		{"/v1/scopes/" + strings.Repeat("x", 300), "unknown_scope", "no scope", 404},
		{"/v1/scopes/normalize", "unknown_scope", "no scope", 404},
		{"/v1/scopes/user:read/extra", "not_found", "", 404},
	} {
		var e errorJSON
		status := fetch(t, "GET", url+tc.path, "", &e)
		if status != tc.status || e.Error == nil || e.Error.Code != tc.code || !strings.Contains(e.Error.Message, tc.msg) {
			t.Errorf("%s: status %d, %+v", tc.path, status, e.Error)
		}
	}
	var e errorJSON
	if status := fetch(t, "POST", url+"/v1/scopes/user:read", "{}", &e); status != 405 {
		t.Errorf("POST on a scope: %d", status)
	}
}

type normalizeJSON struct {
	BundleRevision string   `json:"bundle_revision"`
	Requested      []string `json:"requested"`
	Minimal        []string `json:"minimal"`
	Scope          string   `json:"scope"`
	Expanded       []string `json:"expanded"`
	DefaultApplied bool     `json:"default_applied"`
	Redundant      []struct {
		Scope     string   `json:"scope"`
		ImpliedBy []string `json:"implied_by"`
	} `json:"redundant"`
	Unknown []struct {
		Scope      string `json:"scope"`
		DidYouMean string `json:"did_you_mean"`
	} `json:"unknown"`
	OverBroad []struct {
		Scope    string   `json:"scope"`
		Resource string   `json:"resource"`
		Narrower []string `json:"narrower"`
	} `json:"over_broad"`
	Sensitive []struct {
		Scope       string   `json:"scope"`
		Description string   `json:"description"`
		Via         []string `json:"via"`
	} `json:"sensitive"`
	Hints []string `json:"hints"`
}

func TestNormalizeEndpoint(t *testing.T) {
	eng := repoEngine(t)
	log := &recordingLog{}
	url := start(t, eng, log) + "/v1/scopes/normalize"
	for _, body := range []string{
		`{"scopes":["project:manage","project:read","user:read","projct:write"]}`,
		`{"scopes":"project:manage project:read user:read projct:write"}`,
	} {
		var n normalizeJSON
		if status := fetch(t, "POST", url, body, &n); status != 200 {
			t.Fatalf("status %d", status)
		}
		if !slices.Equal(n.Minimal, []string{"project:manage", "user:read"}) || n.Scope != "project:manage user:read" ||
			len(n.Expanded) != 6 || len(n.Redundant) != 1 || n.Redundant[0].Scope != "project:read" ||
			len(n.Unknown) != 1 || n.Unknown[0].DidYouMean != "project:write" ||
			len(n.OverBroad) != 1 || n.OverBroad[0].Scope != "project:manage" ||
			len(n.Sensitive) != 1 || n.Sensitive[0].Scope != "project:launch" || len(n.Hints) != 4 || n.BundleRevision != eng.Revision() {
			t.Errorf("%s: got %+v", body, n)
		}
	}
	var n normalizeJSON
	if status := fetch(t, "POST", url, `{"scopes":[]}`, &n); status != 200 || !n.DefaultApplied || !slices.Equal(n.Expanded, []string{"public"}) {
		t.Errorf("empty: %d %+v", status, n)
	}

	for _, tc := range []struct {
		name, body, field string
		status            int
	}{
		{"malformed", `{"scopes":`, "", 400},
		{"missing", `{}`, "scopes", 400},
		{"unknown field", `{"scopes":[],"granted_scopes":[]}`, "granted_scopes", 400},
		{"wrong type", `{"scopes":7}`, "scopes", 400},
		{"double space", `{"scopes":"a  b"}`, "scopes", 400},
		{"bad item", `{"scopes":["a",null]}`, "scopes[1]", 400},
		{"too large", `{"scopes":"` + strings.Repeat("a", 70000) + `"}`, "", 413},
	} {
		var e errorJSON
		if status := fetch(t, "POST", url, tc.body, &e); status != tc.status || e.Error == nil || e.Error.Field != tc.field {
			t.Errorf("%s: status %d, %+v", tc.name, status, e.Error)
		}
	}
	if n := len(log.all()); n != 0 {
		t.Errorf("normalize wrote %d decision-log records; it decides nothing", n)
	}
}

func TestCatalogEndpointsWithoutPolicy(t *testing.T) {
	url := start(t, nil, &recordingLog{})
	for _, tc := range []struct{ method, path, body string }{
		{"GET", "/v1/scopes", ""},
		{"GET", "/v1/scopes/user:read", ""},
		{"POST", "/v1/scopes/normalize", `{"scopes":"user:read"}`},
	} {
		var e errorJSON
		if status := fetch(t, tc.method, url+tc.path, tc.body, &e); status != 503 || e.Error == nil || e.Error.Code != "no_policy" {
			t.Errorf("%s %s: %d %+v", tc.method, tc.path, status, e.Error)
		}
	}
}
