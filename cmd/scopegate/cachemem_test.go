package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// cacheAttack is a batch of 100 checks, each a route with a fresh id, for
// a token of 256 long scopes the catalog lacks (a 67 KB body), distinct for
// each n.
func cacheAttack(n int) string {
	scopes := make([]string, 256)
	for i := range scopes {
		scopes[i] = fmt.Sprintf("%s:%03d:%03d", strings.Repeat("u", 120), n, i)
	}
	list := `["` + strings.Join(scopes, `","`) + `"]`
	checks := make([]string, 100)
	for i := range checks {
		checks[i] = fmt.Sprintf(`{"method":"GET","path":"/projects/%d-%d"}`, n, i)
	}
	return `{"granted_scopes":` + list + `,"requested_scopes":` + list + `,"checks":[` + strings.Join(checks, ",") + `]}`
}

// routeFlood is a batch of 100 cacheable checks, each a long path that no
// route matches (so it is keyed on the path, not a route), distinct for
// each n.
func routeFlood(n int) string {
	checks := make([]string, 100)
	for i := range checks {
		checks[i] = fmt.Sprintf(`{"method":"GET","path":"/nowhere/%s-%d-%d"}`, strings.Repeat("p", 1500), n, i)
	}
	return `{"scope":"project:read","checks":[` + strings.Join(checks, ",") + `]}`
}

func (r *running) post(t *testing.T, path, body string) {
	t.Helper()
	resp, err := http.Post(r.url+path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("%s: %d %.200s", path, resp.StatusCode, b)
	}
}

// metric reads one unlabelled metric from /metrics.
func (r *running) metric(t *testing.T, name string) float64 {
	t.Helper()
	resp, err := http.Get(r.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`(?m)^` + name + ` (\S+)$`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("no %s in /metrics", name)
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}

// rssBytes is the resident set size of process pid (Linux).
func rssBytes(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	m := regexp.MustCompile(`VmRSS:\s+(\d+) kB`).FindSubmatch(b)
	if m == nil {
		t.Fatal("no VmRSS")
	}
	kb, _ := strconv.ParseInt(string(m[1]), 10, 64)
	return kb << 10
}

// TestDecisionCacheBoundedInBytes attacks the decision cache: twenty
// distinct 67 KB batches of long unknown scopes (which once grew RSS past
// 1 GB), then floods of distinct cacheable routes with long ids against a
// 1 MiB budget. The cache never holds more than its budget, unknown scopes
// are never cached, and RSS stays under 150 MiB.
func TestDecisionCacheBoundedInBytes(t *testing.T) {
	dir := t.TempDir()
	srv := startServe(t, dir, "--decision-log", dir+"/decisions.log")
	for n := range 20 {
		srv.post(t, "/v1/decide/batch", cacheAttack(n))
	}
	rss := rssBytes(t, srv.cmd.Process.Pid)
	cached := srv.metric(t, "scopegate_decision_cache_bytes")
	t.Logf("after 20 unknown-scope batches: RSS %d MiB, cache %.0f bytes, %0.f skipped", rss>>20, cached, srv.metric(t, "scopegate_decision_cache_skipped_total"))
	// The cache holds the activation's smoke decision, nothing of the attack.
	if rss > 150<<20 || cached > 4<<10 {
		t.Errorf("RSS %d MiB (want < 150), cache %.0f bytes (want none of the attack: unknown scopes are not cached)", rss>>20, cached)
	}
	srv.stop(t)

	const budget = 1 << 20
	srv = startServe(t, dir, "--decision-log", dir+"/decisions.log", "--decision-cache-bytes", "1MiB")
	for n := range 20 {
		srv.post(t, "/v1/decide/batch", routeFlood(n))
		if b := srv.metric(t, "scopegate_decision_cache_bytes"); b > budget {
			t.Fatalf("after %d batches the cache holds %.0f bytes, budget %d", n+1, b, budget)
		}
	}
	if b := srv.metric(t, "scopegate_decision_cache_bytes"); b < budget/4 {
		t.Errorf("the cache holds only %.0f bytes of a %d budget: is it caching?", b, budget)
	}
	t.Logf("after 2,000 distinct 1.5 KB routes: cache %.0f bytes of %d, RSS %d MiB", srv.metric(t, "scopegate_decision_cache_bytes"), budget, rssBytes(t, srv.cmd.Process.Pid)>>20)
	srv.stop(t)
}
