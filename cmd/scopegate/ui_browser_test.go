package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// The web UI, tested in a real browser: Debian's chromium driven by
// chromedp over the DevTools protocol. It runs the real scopegate binary
// on loopback, posts decisions, then loads each view, clicks through a
// filter, the catalog graph, the try-it panel and the advisor, and asserts
// on what the page shows. Screenshots are kept as artifacts.
//
// The test skips when no chromium is installed, unless SCOPEGATE_CHROMIUM
// names one (CI sets it, so there it cannot skip silently).

func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("SCOPEGATE_CHROMIUM"); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("SCOPEGATE_CHROMIUM=%s: %v", p, err)
		}
		return p
	}
	for _, p := range []string{"/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Skip("no chromium found: apt-get install chromium, or set SCOPEGATE_CHROMIUM")
	return ""
}

// artifactsDir is where screenshots go: $SCOPEGATE_ARTIFACTS/ui, or
// .ci/artifacts/ui in the repo (gitignored).
func artifactsDir(t *testing.T) string {
	t.Helper()
	dir := repoPath(".ci/artifacts/ui")
	if d := os.Getenv("SCOPEGATE_ARTIFACTS"); d != "" {
		dir = filepath.Join(d, "ui")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// browser is one headless chromium for a test, with a tab whose script
// errors (exceptions, console.error, CSP violations) fail the test.
type browser struct {
	t         *testing.T
	ctx       context.Context
	artifacts string
	mu        sync.Mutex
	errors    []string
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	exe := chromiumPath(t)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		// This machine's network is closed: chromium must not try to reach
		// anything but the server under test.
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-features", "Translate,OptimizationHints,MediaRouter"),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1440, 1000),
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(alloc)
	t.Cleanup(func() {
		cancelCtx()
		cancelAlloc()
	})
	b := &browser{t: t, ctx: ctx, artifacts: artifactsDir(t)}
	if err := chromedp.Listen(ctx, func(ev any) {
		var msg string
		switch ev := ev.(type) {
		case *runtime.EventExceptionThrown:
			msg = "exception: " + (&chromedp.ExceptionError{ExceptionDetails: ev.ExceptionDetails}).Error()
		case *runtime.EventConsoleAPICalled:
			if ev.Type != runtime.ConsoleAPICalledTypeError {
				return
			}
			var parts []string
			for _, a := range ev.Args {
				parts = append(parts, string(a.Value))
			}
			msg = "console.error: " + strings.Join(parts, " ")
		default:
			return
		}
		b.mu.Lock()
		b.errors = append(b.errors, msg)
		b.mu.Unlock()
	}); err != nil {
		t.Fatalf("start chromium %s: %v", exe, err)
	}
	t.Cleanup(func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		for _, e := range b.errors {
			t.Errorf("page script error: %s", e)
		}
	})
	return b
}

// do runs steps with a time limit.
func (b *browser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.shot("failed-" + strings.ReplaceAll(what, " ", "-"))
		b.t.Fatalf("%s: %v", what, err)
	}
}

// wait polls a JavaScript predicate until it is true.
func (b *browser) wait(what, predicate string) {
	b.t.Helper()
	b.do(what, chromedp.Poll[chromedp.Void](predicate, chromedp.WithPollingTimeout(20*time.Second), chromedp.WithPollingInterval(50*time.Millisecond)))
}

func eval[T any](b *browser, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

func (b *browser) text(sel string) string {
	b.t.Helper()
	return eval[string](b, fmt.Sprintf(`(document.querySelector(%q) || {innerText: ""}).innerText`, sel))
}

func (b *browser) count(sel string) int {
	b.t.Helper()
	return eval[int](b, fmt.Sprintf(`document.querySelectorAll(%q).length`, sel))
}

// shot saves a full-page PNG screenshot as an artifact.
func (b *browser) shot(name string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Errorf("screenshot %s: %v", name, err)
		return
	}
	p := filepath.Join(b.artifacts, name+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		b.t.Error(err)
	}
	b.t.Logf("screenshot: %s", p)
}

func (b *browser) click(sel string) {
	b.t.Helper()
	b.do("click "+sel, chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible))
}

func (b *browser) setValue(sel, value string) {
	b.t.Helper()
	if value == "" {
		// chromedp reads an empty result back as a failure to set.
		eval[bool](b, fmt.Sprintf(`(document.querySelector(%q).value = "") === ""`, sel))
		return
	}
	b.do("set "+sel, chromedp.SetValue(chromedp.CSS(sel), value, chromedp.NodeReady))
}

func mustContain(t *testing.T, what, got string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(got, w) {
			t.Errorf("%s does not show %q:\n%s", what, w, got)
		}
	}
}

// uiDecisions are the decisions the views are tested on: two clients, an
// over-broad one and a lean one, allows and denies of several reasons.
var uiDecisions = []string{
	`{"subject":"app:translator-bot","client_id":"translator-bot","granted_scopes":["project:manage","user:email"],"action":"project.list"}`,
	`{"subject":"app:translator-bot","client_id":"translator-bot","granted_scopes":["project:manage","user:email"],"method":"POST","path":"/projects/42/documents"}`,
	`{"subject":"app:translator-bot","client_id":"translator-bot","granted_scopes":["project:manage","user:email"],"action":"project:read"}`,
	`{"subject":"app:translator-bot","client_id":"translator-bot","granted_scopes":"project:manage user:email","action":"transaction.list","context":{"api_token":"tok-123"}}`,
	`{"subject":"user:42","client_id":"profile-widget","granted_scopes":["user:read"],"method":"GET","path":"/me"}`,
	`{"subject":"user:42","client_id":"profile-widget","granted_scopes":["user:read"],"action":"profile.email.read"}`,
	`{"subject":"user:43","client_id":"profile-widget","granted_scopes":["user:read","user:delete"],"action":"user:read"}`,
	`{"subject":"user:44","client_id":"profile-widget","granted_scopes":["user:read"],"action":"user:read"}`,
}

func postDecisions(t *testing.T, url, token string, bodies []string) {
	t.Helper()
	for _, body := range bodies {
		req, _ := http.NewRequest("POST", url+"/v1/decide", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("decide %s: %d", body, resp.StatusCode)
		}
	}
}

func TestUIInBrowser(t *testing.T) {
	b := newBrowser(t)
	srv := startServe(t, t.TempDir())
	postDecisions(t, srv.url, "", uiDecisions)

	t.Run("decisions", func(t *testing.T) {
		b.t = t
		b.do("open /ui", chromedp.Navigate(srv.url+"/ui/#decisions"))
		b.wait("decisions load", `document.querySelector("#view-decisions").dataset.state === "ready" && document.querySelector("#chain").dataset.ok !== undefined`)
		if n := b.count("#decisions tbody tr.row"); n != len(uiDecisions) {
			t.Errorf("decisions view shows %d rows, want %d", n, len(uiDecisions))
		}
		mustContain(t, "chain status", b.text("#chain"), "Hash chain verified", fmt.Sprintf("%d record(s)", len(uiDecisions)))
		mustContain(t, "decisions table", b.text("#decisions"), "translator-bot", "profile-widget", "POST /projects/42/documents → project.edit", "missing_scope", "unknown_scope")
		b.shot("1-decisions")

		// Filter: missing_scope only.
		b.do("choose reason", chromedp.SetValue(chromedp.CSS(`#filters select[name=reason]`), "missing_scope"))
		b.click("#apply-filters")
		b.wait("filtered", `(() => { const rows = [...document.querySelectorAll("#decisions tbody tr.row")];
			return document.querySelector("#view-decisions").dataset.state === "ready" && rows.length === 2 && rows.every(r => r.dataset.reason === "missing_scope"); })()`)
		mustContain(t, "summary", b.text("#decisions-summary"), "2 decision(s)")

		// Narrow further by client, then expand the row.
		b.setValue(`#filters input[name=client_id]`, "translator-bot")
		b.click("#apply-filters")
		b.wait("filtered by client", `document.querySelectorAll("#decisions tbody tr.row").length === 1 && document.querySelector("#decisions tbody tr.row td:nth-child(5)").innerText === "translator-bot"`)
		b.click("#decisions tbody tr.row")
		b.wait("row expands", `!document.querySelector("#decisions tbody tr.detail-row").hidden`)
		detail := b.text("#decisions tbody tr.detail-row")
		mustContain(t, "expanded decision", detail,
			"action transaction.list requires one of [transaction:read]", // the explanation
			"Remedy:", "transaction:read",
			`"api_token": "***"`, // input, masked
			"bundle revision", "sha256-")
		if strings.Contains(detail, "tok-123") {
			t.Error("the masked secret is shown")
		}
		b.shot("2-decisions-filtered-expanded")

		// Clear brings every row back.
		b.click("#clear-filters")
		b.wait("cleared", fmt.Sprintf(`document.querySelectorAll("#decisions tbody tr.row").length === %d`, len(uiDecisions)))
	})

	t.Run("catalog", func(t *testing.T) {
		b.t = t
		b.click(`#tabs a[data-view=catalog]`)
		b.wait("catalog load", `document.querySelector("#view-catalog").dataset.state === "ready"`)
		if n := b.count("#graph g.node"); n != 20 {
			t.Errorf("graph draws %d scope nodes, want 20", n)
		}
		if n := b.count("#graph path.edge"); n < 15 {
			t.Errorf("graph draws %d inclusion edges", n)
		}
		sensitive := eval[[]string](b, `[...document.querySelectorAll("#graph g.node.sensitive")].map(n => n.dataset.scope).sort()`)
		if strings.Join(sensitive, " ") != "project:launch transaction:read" {
			t.Errorf("sensitive nodes: %v", sensitive)
		}
		mustContain(t, "catalog summary", b.text("#catalog-summary"), "20 scopes, 2 sensitive", "default scope public")
		mustContain(t, "scope table", b.text("#scope-table"), "Launch projects and debit the client's account.", "sensitive")
		// Inclusion depth: manage on the left of write, write left of read.
		xs := eval[[]float64](b, `["project:manage","project:write","project:read"].map(s => document.querySelector('#graph g.node[data-scope="'+s+'"]').getBoundingClientRect().x)`)
		if !(xs[0] < xs[1] && xs[1] < xs[2]) {
			t.Errorf("layers not by inclusion depth: %v", xs)
		}

		b.click(`#graph g.node[data-scope="project:launch"]`)
		b.wait("scope detail", `(() => { const d = document.querySelector("#scope-detail"); return d.dataset.scope === "project:launch" && d.dataset.state === "ready"; })()`)
		detail := b.text("#scope-detail")
		mustContain(t, "project:launch detail", detail, "Launch projects and debit the client's account.", "sensitive",
			"included by", "project:manage", "project.launch", "POST /projects/{id}/launch")
		if !eval[bool](b, `document.querySelector('#graph g.node[data-scope="project:launch"]').classList.contains("selected") &&
			document.querySelector('#graph g.node[data-scope="project:manage"]').classList.contains("related")`) {
			t.Error("selection not highlighted in the graph")
		}
		b.shot("3-catalog-project-launch")

		b.click(`#graph g.node[data-scope="user:read"]`)
		b.wait("user:read detail", `document.querySelector("#scope-detail").dataset.scope === "user:read" && document.querySelector("#scope-detail").dataset.state === "ready"`)
		mustContain(t, "user:read detail", b.text("#scope-detail"), "user:manage", "user:write", "profile.read", "GET /me")
	})

	t.Run("try-it", func(t *testing.T) {
		b.t = t
		b.click(`#tabs a[data-view=try]`)
		b.wait("try-it ready", `document.querySelector("#view-try").dataset.state === "ready"`)
		b.setValue(`#try-form textarea[name=granted]`, "user:read project:write")
		b.setValue(`#try-form input[name=action]`, "project:launch")
		b.click("#try-submit")
		b.wait("deny shown", `document.querySelector("#try-result").dataset.state === "ready"`)
		got := b.text("#try-result")
		mustContain(t, "try-it deny", got, "DENY", "missing_scope", "action project:launch requires one of [project:launch project:manage]",
			"request scope project:launch (narrowest)")
		b.shot("4-try-it-deny")

		b.click(`#try-form input[name=mode][value=route]`)
		b.setValue(`#try-form textarea[name=granted]`, "project:manage")
		b.do("method", chromedp.SetValue(chromedp.CSS(`#try-form select[name=method]`), "POST"))
		b.setValue(`#try-form input[name=path]`, "/projects/42/launch")
		b.click("#try-submit")
		b.wait("allow shown", `document.querySelector("#try-result .verdict") && document.querySelector("#try-result .verdict").dataset.allow === "true"`)
		mustContain(t, "try-it allow", b.text("#try-result"), "ALLOW", "allowed", "project.launch", "project:manage confers")
		b.shot("5-try-it-allow")

		// Malformed input is rejected with the field named.
		b.click(`#try-form input[name=mode][value=action]`)
		b.setValue(`#try-form textarea[name=granted]`, "user:read")
		b.setValue(`#try-form input[name=action]`, "")
		b.click("#try-submit")
		b.wait("rejection shown", `document.querySelector("#try-result .verdict.invalid") !== null`)
		mustContain(t, "try-it rejection", b.text("#try-result"), "rejected", "invalid_input")
	})

	t.Run("advisor", func(t *testing.T) {
		b.t = t
		b.click(`#tabs a[data-view=advisor]`)
		b.wait("advice load", `document.querySelector("#view-advisor").dataset.state === "ready"`)
		clients := eval[[]string](b, `[...document.querySelectorAll("#advice tbody tr.row")].map(r => r.dataset.client)`)
		if strings.Join(clients, " ") != "profile-widget translator-bot" {
			t.Fatalf("advisor lists %v", clients)
		}
		bot := `#advice tbody tr.row[data-client="translator-bot"]`
		mustContain(t, "translator-bot row", b.text(bot), "project:manage", "user:email", "project:write", "narrow it")
		if needed := b.text(bot + " td.needed"); strings.TrimSpace(needed) != "project:write" {
			t.Errorf("translator-bot needs %q, want project:write", needed)
		}
		mustContain(t, "advisor summary", b.text("#advice-summary"), "2 client(s)", "without a client_id")
		b.click(bot)
		b.wait("advice expands", `!document.querySelector('#advice tbody tr.row[data-client="translator-bot"] + tr.detail-row').hidden`)
		mustContain(t, "translator-bot findings", b.text(`#advice tbody tr.row[data-client="translator-bot"] + tr.detail-row`),
			`request "project:write" instead`, "project:manage (full access) was only used for", "never used: user:email",
			"sensitive scopes granted but never needed: project:launch", "denied transaction.list 1 time(s)")
		b.shot("6-advisor")

		// The period filter narrows it to nothing.
		b.setValue(`#advice-form input[name=to]`, "2000-01-01T00:00")
		b.click("#advise")
		b.wait("empty period", `document.querySelector("#view-advisor").dataset.state === "ready" && document.querySelectorAll("#advice tbody tr.row").length === 0`)
	})
}

// With auth on, the page loads but shows nothing until an admin token is
// given; the data endpoints answer 401 without it.
func TestUIInBrowserWithAuth(t *testing.T) {
	b := newBrowser(t)
	dir := t.TempDir()
	const adminToken = "auditor-token-0123456789abcdef"
	admins := filepath.Join(dir, "admin-tokens")
	if err := os.WriteFile(admins, []byte("auditor "+adminToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := startServe(t, dir, "--admin-tokens", admins)
	postDecisions(t, srv.url, adminToken, uiDecisions[:3])

	for _, p := range []string{"/v1/admin/decisions", "/v1/admin/decisions/verify", "/v1/admin/advice", "/v1/admin/actions", "/v1/scopes"} {
		resp, err := http.Get(srv.url + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET %s without a token: %d, want 401", p, resp.StatusCode)
		}
	}

	b.do("open /ui", chromedp.Navigate(srv.url+"/ui/"))
	b.wait("auth error shown", `document.querySelector("#view-decisions").dataset.state === "error" && !document.querySelector("#banner").hidden`)
	mustContain(t, "banner", b.text("#banner"), "paste an admin token")
	if n := b.count("#decisions tbody tr.row"); n != 0 {
		t.Errorf("%d rows shown without a token", n)
	}
	b.shot("7-auth-no-token")

	b.setValue("#token", adminToken)
	b.click(`#token-form button[type=submit]`)
	b.wait("decisions with token", `document.querySelector("#view-decisions").dataset.state === "ready" && document.querySelectorAll("#decisions tbody tr.row").length === 3`)
	mustContain(t, "token state", b.text("#token-state"), "token set")
	if b.text("#token") != "" || eval[string](b, `document.querySelector("#token").value`) != "" {
		t.Error("the token stays in the input")
	}
	b.click(`#tabs a[data-view=advisor]`)
	b.wait("advice with token", `document.querySelector("#view-advisor").dataset.state === "ready" && document.querySelectorAll("#advice tbody tr.row").length === 1`)
	b.shot("8-auth-with-token")

	b.click("#token-forget")
	b.wait("forgotten", `document.querySelector("#view-advisor").dataset.state === "error"`)
}
