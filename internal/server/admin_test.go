package server_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/scopegate/scopegate/internal/auth"
	"github.com/scopegate/scopegate/internal/decisionlog"
	"github.com/scopegate/scopegate/internal/server"
)

// adminServer serves the repo's policy with a real decision log in a temp
// dir, and returns its URL and the log path.
func adminServer(t *testing.T, a *auth.Authenticator) (string, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "decisions.log")
	w, err := decisionlog.Open(context.Background(), decisionlog.Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Close(context.Background()) })
	return newTestServer(t, server.New(repoEngine(t), server.Options{Log: w, DecisionLogPath: path, Auth: a})), path
}

func getJSON(t *testing.T, url, token string, out any) int {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("GET %s: %d %s: %v", url, resp.StatusCode, b, err)
		}
	}
	return resp.StatusCode
}

func postDecide(t *testing.T, url, body string) {
	t.Helper()
	resp, err := http.Post(url+"/v1/decide", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}

type adminDecisions struct {
	Decisions []struct {
		DecisionID string         `json:"decision_id"`
		Reason     string         `json:"reason"`
		Allow      bool           `json:"allow"`
		ClientID   string         `json:"client_id"`
		Subject    string         `json:"subject"`
		Timestamp  time.Time      `json:"timestamp"`
		Input      map[string]any `json:"input"`
		Result     struct {
			Explain []string `json:"explain"`
		} `json:"result"`
		Bundles map[string]struct{ Revision string } `json:"bundles"`
	} `json:"decisions"`
	Count    int      `json:"count"`
	Limit    int      `json:"limit"`
	Limited  bool     `json:"limited"`
	Files    int      `json:"files"`
	Warnings []string `json:"warnings"`
	Error    *struct{ Code, Field string }
}

func TestAdminDecisions(t *testing.T) {
	url, _ := adminServer(t, nil)
	bodies := []string{
		`{"client_id":"bot","subject":"app:bot","granted_scopes":["project:manage"],"action":"project.list"}`,
		`{"client_id":"bot","subject":"app:bot","granted_scopes":["project:manage"],"action":"transaction.list"}`,
		`{"client_id":"reader","subject":"u1","granted_scopes":["user:read"],"action":"user:email","context":{"api_token":"s3cret"}}`,
		`{"client_id":"reader","subject":"u1","granted_scopes":["user:read"],"method":"GET","path":"/me"}`,
		`{"granted_scopes":["user:read"],"action":"user:read","bogus":1}`,
	}
	for _, b := range bodies {
		postDecide(t, url, b)
	}

	var all adminDecisions
	if code := getJSON(t, url+"/v1/admin/decisions", "", &all); code != 200 || all.Count != 5 || all.Files != 1 || all.Limit != 100 || all.Limited || len(all.Warnings) != 0 {
		t.Fatalf("%d %+v", code, all)
	}
	// Newest first.
	if all.Decisions[0].Reason != "invalid_input" || all.Decisions[4].ClientID != "bot" {
		t.Errorf("order: %+v", all.Decisions)
	}
	for i := 1; i < len(all.Decisions); i++ {
		if all.Decisions[i].Timestamp.After(all.Decisions[i-1].Timestamp) {
			t.Errorf("not newest first at %d", i)
		}
	}
	masked := all.Decisions[2]
	if masked.Reason != "missing_scope" || masked.Input["context"].(map[string]any)["api_token"] != "***" || len(masked.Result.Explain) == 0 ||
		masked.Bundles["scopegate"].Revision == "" {
		t.Errorf("record: %+v", masked)
	}

	for _, tc := range []struct {
		query string
		want  int
	}{
		{"reason=missing_scope", 2},
		{"allow=true", 2},
		{"allow=false", 3},
		{"client_id=bot", 2},
		{"subject=u1", 2},
		{"scope=project:manage", 2},
		{"client_id=reader&allow=true", 1},
		{"limit=2", 2},
		{"from=2000-01-01&to=2999-01-01", 5},
		{"to=2000-01-01", 0},
		{"from=2999-01-01T00:00:00Z", 0},
		{"subject=&reason=", 5},
	} {
		var got adminDecisions
		if code := getJSON(t, url+"/v1/admin/decisions?"+tc.query, "", &got); code != 200 || got.Count != tc.want || len(got.Decisions) != tc.want {
			t.Errorf("%s: %d count %d, want %d", tc.query, code, got.Count, tc.want)
		}
	}
	var limited adminDecisions
	getJSON(t, url+"/v1/admin/decisions?limit=2", "", &limited)
	if !limited.Limited || limited.Decisions[0].DecisionID != all.Decisions[0].DecisionID {
		t.Errorf("limit keeps the newest: %+v", limited)
	}

	for _, tc := range []struct{ query, field string }{
		{"allow=maybe", "allow"},
		{"limit=0", "limit"},
		{"limit=1001", "limit"},
		{"limit=x", "limit"},
		{"from=yesterday", "from"},
		{"from=2026-01-02&to=2026-01-01", "to"},
		{"colour=red", "colour"},
		{"reason=a&reason=b", "reason"},
	} {
		var got adminDecisions
		if code := getJSON(t, url+"/v1/admin/decisions?"+tc.query, "", &got); code != 400 || got.Error == nil || got.Error.Field != tc.field {
			t.Errorf("%s: %d %+v", tc.query, code, got.Error)
		}
	}
}

func TestAdminDecisionsAcrossRotatedFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "decisions.log")
	w, err := decisionlog.Open(context.Background(), decisionlog.Options{Path: path, MaxBytes: 3000})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close(context.Background())
	url := newTestServer(t, server.New(repoEngine(t), server.Options{Log: w, DecisionLogPath: path}))
	for i := 0; i < 12; i++ {
		postDecide(t, url, `{"client_id":"c`+string(rune('a'+i))+`","granted_scopes":["user:read"],"action":"user:read"}`)
	}
	var got adminDecisions
	getJSON(t, url+"/v1/admin/decisions?limit=7", "", &got)
	if got.Files < 3 || got.Count != 7 || got.Decisions[0].ClientID != "cl" || got.Decisions[6].ClientID != "cf" {
		var ids []string
		for _, d := range got.Decisions {
			ids = append(ids, d.ClientID)
		}
		t.Fatalf("files %d count %d %v", got.Files, got.Count, ids)
	}
	var v struct {
		OK      bool `json:"ok"`
		Files   int  `json:"files"`
		Records int  `json:"records"`
	}
	if getJSON(t, url+"/v1/admin/decisions/verify", "", &v); !v.OK || v.Records != 12 || v.Files != got.Files {
		t.Errorf("verify %+v", v)
	}
}

func TestAdminVerify(t *testing.T) {
	url, path := adminServer(t, nil)
	type verify struct {
		OK              bool   `json:"ok"`
		Files           int    `json:"files"`
		Records         int    `json:"records"`
		StartsAtGenesis bool   `json:"starts_at_genesis"`
		LastHash        string `json:"last_hash"`
		Break           *struct {
			File   string `json:"file"`
			Line   int    `json:"line"`
			Kind   string `json:"kind"`
			Detail string `json:"detail"`
		} `json:"break"`
	}
	var v verify
	if code := getJSON(t, url+"/v1/admin/decisions/verify", "", &v); code != 200 || !v.OK || v.Records != 0 {
		t.Fatalf("empty log: %d %+v", code, v)
	}
	for i := 0; i < 3; i++ {
		postDecide(t, url, `{"client_id":"c","granted_scopes":["user:read"],"action":"user:read"}`)
	}
	if getJSON(t, url+"/v1/admin/decisions/verify", "", &v); !v.OK || v.Records != 3 || !v.StartsAtGenesis || len(v.LastHash) != 64 || v.Break != nil {
		t.Fatalf("%+v", v)
	}
	// An auditor's nightmare: someone edits line 2.
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(b), "\n")
	lines[1] = strings.Replace(lines[1], `"allow":true`, `"allow":false`, 1)
	if err := os.WriteFile(path, []byte(strings.Join(lines, "")), 0o644); err != nil {
		t.Fatal(err)
	}
	v = verify{}
	if code := getJSON(t, url+"/v1/admin/decisions/verify", "", &v); code != 200 || v.OK || v.Break == nil || v.Break.Line != 2 ||
		v.Break.File != path || v.Break.Kind != string(decisionlog.KindHashMismatch) || v.Records != 1 {
		t.Fatalf("tampered: %d %+v %+v", code, v, v.Break)
	}
}

func TestAdminAdvice(t *testing.T) {
	url, _ := adminServer(t, nil)
	for _, b := range []string{
		`{"client_id":"bot","subject":"app:bot","granted_scopes":["project:manage","user:email"],"action":"project.list"}`,
		`{"client_id":"bot","subject":"app:bot","granted_scopes":["project:manage","user:email"],"method":"POST","path":"/projects"}`,
		`{"client_id":"bot","subject":"app:bot","granted_scopes":"project:manage user:email","action":"transaction.list"}`,
		`{"client_id":"lean","subject":"u2","granted_scopes":["user:read"],"action":"profile.read"}`,
		`{"subject":"nobody","granted_scopes":["user:read"],"action":"profile.read"}`,
	} {
		postDecide(t, url, b)
	}
	var r struct {
		BundleRevision string `json:"bundle_revision"`
		Records        int    `json:"records"`
		Unattributed   int    `json:"unattributed"`
		Clients        []struct {
			ClientID       string   `json:"client_id"`
			Granted        []string `json:"granted"`
			Needed         []string `json:"needed"`
			Recommended    string   `json:"recommended"`
			Unused         []string `json:"unused"`
			Excess         []string `json:"excess"`
			LeastPrivilege bool     `json:"least_privilege"`
			OverBroad      []struct {
				Scope    string   `json:"scope"`
				Manage   bool     `json:"manage"`
				Narrower []string `json:"narrower"`
			} `json:"over_broad"`
			Missing []struct{ Action, Scope string } `json:"missing"`
		} `json:"clients"`
		Warnings []string `json:"warnings"`
	}
	if code := getJSON(t, url+"/v1/admin/advice", "", &r); code != 200 || r.Records != 5 || r.Unattributed != 1 || len(r.Clients) != 2 || r.BundleRevision == "" {
		t.Fatalf("%d %+v", code, r)
	}
	bot, lean := r.Clients[0], r.Clients[1]
	if bot.ClientID != "bot" || !slices.Equal(bot.Needed, []string{"project:write"}) || bot.Recommended != "project:write" ||
		!slices.Equal(bot.Unused, []string{"user:email"}) || bot.LeastPrivilege ||
		len(bot.OverBroad) != 1 || bot.OverBroad[0].Scope != "project:manage" || !bot.OverBroad[0].Manage ||
		!slices.Equal(bot.OverBroad[0].Narrower, []string{"project:write"}) ||
		!slices.Equal(bot.Excess, []string{"project:launch", "project:manage", "project:quote", "user:email"}) ||
		len(bot.Missing) != 1 || bot.Missing[0].Action != "transaction.list" || bot.Missing[0].Scope != "transaction:read" {
		t.Errorf("bot: %+v", bot)
	}
	if lean.ClientID != "lean" || !lean.LeastPrivilege || !slices.Equal(lean.Needed, []string{"user:read"}) {
		t.Errorf("lean: %+v", lean)
	}

	var one struct {
		Records int `json:"records"`
		Clients []struct {
			ClientID string `json:"client_id"`
		} `json:"clients"`
	}
	if getJSON(t, url+"/v1/admin/advice?client_id=lean", "", &one); one.Records != 1 || len(one.Clients) != 1 || one.Clients[0].ClientID != "lean" {
		t.Errorf("one client: %+v", one)
	}
	if getJSON(t, url+"/v1/admin/advice?to=2000-01-01", "", &one); one.Records != 0 || len(one.Clients) != 0 {
		t.Errorf("empty period: %+v", one)
	}
	var bad struct{ Error *struct{ Field string } }
	if code := getJSON(t, url+"/v1/admin/advice?from=soon", "", &bad); code != 400 || bad.Error == nil || bad.Error.Field != "from" {
		t.Errorf("bad from: %d %+v", code, bad)
	}
}

func TestAdminActions(t *testing.T) {
	url, _ := adminServer(t, nil)
	var r struct {
		BundleRevision string `json:"bundle_revision"`
		Named          []struct {
			Name        string   `json:"name"`
			AnyOf       []string `json:"any_of"`
			ConferredBy []string `json:"conferred_by"`
		} `json:"named"`
		Routes  []struct{ Method, Path, Action string } `json:"routes"`
		ByScope map[string]struct {
			NeededBy []string                                `json:"needed_by"`
			Allows   []string                                `json:"allows"`
			Routes   []struct{ Method, Path, Action string } `json:"routes"`
		} `json:"by_scope"`
	}
	if code := getJSON(t, url+"/v1/admin/actions", "", &r); code != 200 || len(r.Named) == 0 || len(r.Routes) == 0 || len(r.ByScope) != 20 {
		t.Fatalf("%d named %d routes %d by_scope %d", code, len(r.Named), len(r.Routes), len(r.ByScope))
	}
	launch := r.ByScope["project:launch"]
	if !slices.Equal(launch.NeededBy, []string{"project.launch"}) || len(launch.Routes) != 1 || launch.Routes[0].Path != "/projects/{id}/launch" {
		t.Errorf("project:launch: %+v", launch)
	}
}

func TestAdminWithoutDecisionLogFile(t *testing.T) {
	for _, path := range []string{"", "-"} {
		url := newTestServer(t, server.New(repoEngine(t), server.Options{DecisionLogPath: path}))
		for _, p := range []string{"/v1/admin/decisions", "/v1/admin/decisions/verify", "/v1/admin/advice"} {
			var e struct{ Error *struct{ Code string } }
			if code := getJSON(t, url+p, "", &e); code != 404 || e.Error == nil || e.Error.Code != "no_decision_log" {
				t.Errorf("%q %s: %d %+v", path, p, code, e.Error)
			}
		}
	}
}

func TestAdminAndUIAuth(t *testing.T) {
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	admins := filepath.Join(dir, "admins")
	os.WriteFile(tokens, []byte("svc decide-token-0123456789\n"), 0o600)
	os.WriteFile(admins, []byte("auditor admin-token-0123456789ab\n"), 0o600)
	a, err := auth.New(auth.Options{TokenFile: tokens, AdminTokenFile: admins})
	if err != nil {
		t.Fatal(err)
	}
	url, _ := adminServer(t, a)
	for _, tc := range []struct {
		path, token string
		want        int
	}{
		{"/v1/admin/decisions", "", 401},
		{"/v1/admin/decisions", "decide-token-0123456789", 403},
		{"/v1/admin/decisions", "admin-token-0123456789ab", 200},
		{"/v1/admin/decisions/verify", "", 401},
		{"/v1/admin/decisions/verify", "admin-token-0123456789ab", 200},
		{"/v1/admin/advice", "", 401},
		{"/v1/admin/advice", "decide-token-0123456789", 403},
		{"/v1/admin/advice", "admin-token-0123456789ab", 200},
		{"/v1/admin/actions", "", 401},
		{"/v1/admin/actions", "admin-token-0123456789ab", 200},
		{"/v1/scopes", "", 401},
		// The page's static assets carry no data and are open: a browser
		// cannot attach a bearer token to a page load.
		{"/ui/", "", 200},
		{"/ui/app.js", "", 200},
		{"/ui/app.css", "", 200},
		{"/ui/nope.js", "", 404},
	} {
		if got := getJSON(t, url+tc.path, tc.token, nil); got != tc.want {
			t.Errorf("GET %s with %q: %d, want %d", tc.path, tc.token, got, tc.want)
		}
	}
}

func TestUIAssets(t *testing.T) {
	url := newTestServer(t, server.New(repoEngine(t), server.Options{}))
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(url + "/ui")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != "/ui/" {
		t.Errorf("/ui: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	for _, tc := range []struct{ path, ctype, contains string }{
		{"/ui/", "text/html", `<script src="app.js" defer></script>`},
		{"/ui/app.js", "text/javascript", "/v1/admin/decisions"},
		{"/ui/app.css", "text/css", "#graph"},
	} {
		resp, err := http.Get(url + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		h := resp.Header
		if resp.StatusCode != 200 || !strings.HasPrefix(h.Get("Content-Type"), tc.ctype) || !strings.Contains(string(b), tc.contains) ||
			!strings.Contains(h.Get("Content-Security-Policy"), "script-src 'self'") || h.Get("X-Content-Type-Options") != "nosniff" ||
			h.Get("X-Frame-Options") != "DENY" {
			t.Errorf("%s: %d %v", tc.path, resp.StatusCode, h)
		}
		// Nothing is fetched from elsewhere.
		for _, ext := range []string{"http://", "https://", "//cdn"} {
			if strings.Contains(strings.ReplaceAll(string(b), "http://www.w3.org/2000/svg", ""), ext) {
				t.Errorf("%s references %s", tc.path, ext)
			}
		}
	}
}

// TestAdminDecisionsIndexed: with the index built (serve builds it at
// start), the auditor endpoints answer what reading the files answers,
// decision_id included, and verify follows new records.
func TestAdminDecisionsIndexed(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "decisions.log")
	w, err := decisionlog.Open(context.Background(), decisionlog.Options{Path: path, MaxBytes: 3000})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close(context.Background())
	indexed := server.New(repoEngine(t), server.Options{Log: w, DecisionLogPath: path})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	indexed.IndexLog(ctx, time.Hour) // one build, then return
	url := newTestServer(t, indexed)
	plain := newTestServer(t, server.New(repoEngine(t), server.Options{DecisionLogPath: path}))
	for i := 0; i < 12; i++ {
		postDecide(t, url, `{"subject":"s`+string(rune('a'+i%3))+`","client_id":"c`+string(rune('a'+i))+`","granted_scopes":["user:read"],"action":"user:read"}`)
	}
	var all adminDecisions
	getJSON(t, plain+"/v1/admin/decisions", "", &all)
	for _, q := range []string{"?limit=7", "?subject=sb", "?client_id=cc&limit=1", "?decision_id=" + all.Decisions[5].DecisionID, "?scope=user:read&limit=3", "?subject=nobody"} {
		var a, b adminDecisions
		getJSON(t, url+"/v1/admin/decisions"+q, "", &a)
		getJSON(t, plain+"/v1/admin/decisions"+q, "", &b)
		ja, _ := json.Marshal(a.Decisions)
		jb, _ := json.Marshal(b.Decisions)
		if string(ja) != string(jb) || a.Count != b.Count {
			t.Errorf("%s: indexed %d, files %d:\n%s\n%s", q, a.Count, b.Count, ja, jb)
		}
	}
	var v struct {
		OK      bool `json:"ok"`
		Records int  `json:"records"`
	}
	if getJSON(t, url+"/v1/admin/decisions/verify", "", &v); !v.OK || v.Records != 12 {
		t.Errorf("indexed verify %+v", v)
	}
}
