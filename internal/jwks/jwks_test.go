package jwks

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/scopegate/scopegate/internal/testpki"
)

// endpoint is an issuer's JWKS URL whose answer a test changes.
type endpoint struct {
	mu      sync.Mutex
	body    []byte
	status  int
	header  http.Header
	delay   time.Duration
	fetches atomic.Int64
	srv     *httptest.Server
}

func newEndpoint(t *testing.T, is *testpki.Issuer) *endpoint {
	e := &endpoint{status: 200, header: http.Header{}}
	e.serve(t, is)
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.fetches.Add(1)
		e.mu.Lock()
		body, status, delay := e.body, e.status, e.delay
		for k, v := range e.header {
			w.Header()[k] = v
		}
		e.mu.Unlock()
		if delay > 0 {
			select {
			case <-time.After(delay):
			case <-r.Context().Done():
				return
			}
		}
		w.WriteHeader(status)
		_, _ = w.Write(body)
	}))
	t.Cleanup(e.srv.Close)
	return e
}

// serve makes the endpoint publish is's keys.
func (e *endpoint) serve(t *testing.T, is *testpki.Issuer) {
	raw, err := os.ReadFile(is.JWKS)
	if err != nil {
		t.Fatal(err)
	}
	e.mu.Lock()
	e.body, e.status = raw, 200
	e.mu.Unlock()
}

func (e *endpoint) set(f func(e *endpoint)) {
	e.mu.Lock()
	defer e.mu.Unlock()
	f(e)
}

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func newRemote(t *testing.T, e *endpoint, c *clock) *Remote {
	r, err := New(e.srv.URL+"/jwks", Options{Now: c.Now, Client: &http.Client{Timeout: 300 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestRotationWithoutRestart: a token naming a new key makes the set be
// refetched, at most once every MinRefresh.
func TestRotationWithoutRestart(t *testing.T) {
	old, next := testpki.NewIssuerKid(t, "k-old"), testpki.NewIssuerKid(t, "k-new")
	e := newEndpoint(t, old)
	c := &clock{now: time.Unix(1_800_000_000, 0)}
	r := newRemote(t, e, c)
	ctx := context.Background()
	if _, err := r.Key(ctx, "k-old"); err != nil {
		t.Fatal(err)
	}
	e.serve(t, next) // the issuer rotates
	c.add(11 * time.Second)
	if _, err := r.Key(ctx, "k-new"); err != nil {
		t.Fatalf("rotated key: %v", err)
	}
	if _, err := r.Key(ctx, "k-old"); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("the retired key is still served: %v", err)
	}
	// An unknown kid within MinRefresh of the last fetch fetches nothing.
	before := e.fetches.Load()
	for range 50 {
		if _, err := r.Key(ctx, "k-forged"); !errors.Is(err, ErrUnknownKey) {
			t.Fatalf("forged kid: %v", err)
		}
	}
	if n := e.fetches.Load() - before; n != 0 {
		t.Errorf("%d fetches for unknown kids within MinRefresh", n)
	}
	c.add(10 * time.Second)
	if _, err := r.Key(ctx, "k-forged"); !errors.Is(err, ErrUnknownKey) || e.fetches.Load() != before+1 {
		t.Errorf("after MinRefresh: %v, %d fetches", err, e.fetches.Load()-before)
	}
}

// TestEndpointDownServesUntilExpiry: cached keys serve while the endpoint
// is down, until the lifetime its Cache-Control gave runs out; then
// lookups fail with ErrUnavailable.
func TestEndpointDownServesUntilExpiry(t *testing.T) {
	is := testpki.NewIssuerKid(t, "k1")
	e := newEndpoint(t, is)
	e.set(func(e *endpoint) { e.header.Set("Cache-Control", "public, max-age=120") })
	c := &clock{now: time.Unix(1_800_000_000, 0)}
	r := newRemote(t, e, c)
	ctx := context.Background()
	if err := r.Fetch(ctx); err != nil {
		t.Fatal(err)
	}
	e.set(func(e *endpoint) { e.status, e.body = 503, []byte("down") })
	c.add(119 * time.Second)
	if _, err := r.Key(ctx, "k1"); err != nil {
		t.Fatalf("within max-age, endpoint down: %v", err)
	}
	waitFor(t, func() bool { n, _, _ := r.Stats(); return n == 2 && !r.isFetching() }) // the background refresh past half-life
	c.add(2 * time.Second)
	if _, err := r.Key(ctx, "k1"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("past max-age, endpoint down: %v", err)
	}
	// Back up: the next lookup past MinRefresh fetches again.
	e.serve(t, is)
	c.add(10 * time.Second)
	if _, err := r.Key(ctx, "k1"); err != nil {
		t.Errorf("endpoint back: %v", err)
	}
}

// TestSlowEndpoint: a fetch past the client's deadline is a failure; with
// nothing cached, that is ErrUnavailable, quickly.
func TestSlowEndpoint(t *testing.T) {
	is := testpki.NewIssuerKid(t, "k1")
	e := newEndpoint(t, is)
	e.set(func(e *endpoint) { e.delay = 5 * time.Second })
	c := &clock{now: time.Unix(1_800_000_000, 0)}
	r := newRemote(t, e, c)
	start := time.Now()
	if _, err := r.Key(context.Background(), "k1"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("slow endpoint: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("waited %v", d)
	}
}

// TestRefusedSets: a set Validate refuses, garbage or an oversized body
// never replaces the current one; a key the issuer might have added
// meanwhile is "unavailable", not "unknown".
func TestRefusedSets(t *testing.T) {
	is := testpki.NewIssuerKid(t, "k1")
	e := newEndpoint(t, is)
	c := &clock{now: time.Unix(1_800_000_000, 0)}
	refuse := false
	r, err := New(e.srv.URL, Options{Now: c.Now, Validate: func(jwk.Set) error {
		if refuse {
			return errors.New("a private key")
		}
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := r.Fetch(ctx); err != nil {
		t.Fatal(err)
	}
	for name, bad := range map[string]func(){
		"refused by Validate": func() { refuse = true },
		"garbage":             func() { refuse = false; e.set(func(e *endpoint) { e.body = []byte("{not json") }) },
		"over 1 MiB":          func() { e.set(func(e *endpoint) { e.body = make([]byte, MaxBytes+10) }) },
	} {
		bad()
		c.add(11 * time.Second)
		if _, err := r.Key(ctx, "k2"); !errors.Is(err, ErrUnavailable) {
			t.Errorf("%s: new kid: %v", name, err)
		}
		if _, err := r.Key(ctx, "k1"); err != nil {
			t.Errorf("%s: the current set was replaced: %v", name, err)
		}
	}
}

func (r *Remote) isFetching() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.fetching
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("condition not met in 5s")
}

func TestCheckURL(t *testing.T) {
	for u, ok := range map[string]bool{
		"https://id.example.com/.well-known/jwks.json": true,
		"http://127.0.0.1:8080/jwks":                   true,
		"http://localhost/jwks":                        true,
		"http://[::1]:9/jwks":                          true,
		"http://id.example.com/jwks":                   false,
		"http://10.0.0.1/jwks":                         false,
		"ftp://id.example.com/jwks":                    false,
		"https:///jwks":                                false,
	} {
		if err := CheckURL(u); (err == nil) != ok {
			t.Errorf("%s: %v", u, err)
		}
	}
}

func TestLifetime(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	h := func(kv ...string) http.Header {
		out := http.Header{}
		for i := 0; i < len(kv); i += 2 {
			out.Set(kv[i], kv[i+1])
		}
		return out
	}
	for name, tc := range map[string]struct {
		h    http.Header
		want time.Duration
	}{
		"none":            {h(), DefaultTTL},
		"max-age":         {h("Cache-Control", "public, max-age=300"), 5 * time.Minute},
		"s-maxage":        {h("Cache-Control", "s-maxage=600"), 10 * time.Minute},
		"no-store":        {h("Cache-Control", "no-store"), 10 * time.Second},
		"tiny max-age":    {h("Cache-Control", "max-age=1"), 10 * time.Second},
		"huge max-age":    {h("Cache-Control", "max-age=99999999"), MaxTTL},
		"expires":         {h("Expires", now.Add(time.Hour).UTC().Format(http.TimeFormat)), time.Hour},
		"expires in past": {h("Expires", now.Add(-time.Hour).UTC().Format(http.TimeFormat)), 10 * time.Second},
		"max-age wins":    {h("Cache-Control", "max-age=60", "Expires", now.Add(time.Hour).UTC().Format(http.TimeFormat)), time.Minute},
	} {
		if got := lifetime(tc.h, now, 10*time.Second); got != tc.want {
			t.Errorf("%s: %v, want %v", name, got, tc.want)
		}
	}
}

// FuzzLifetime: whatever an issuer's caching headers say, a set lives
// between the refresh floor and MaxTTL.
func FuzzLifetime(f *testing.F) {
	f.Add("public, max-age=300", "")
	f.Add("no-store", "Thu, 01 Jan 1970 00:00:00 GMT")
	f.Add("max-age=-5, s-maxage=99999999999999999999", "garbage")
	f.Fuzz(func(t *testing.T, cc, expires string) {
		h := http.Header{}
		h.Set("Cache-Control", cc)
		h.Set("Expires", expires)
		got := lifetime(h, time.Unix(1_800_000_000, 0), 10*time.Second)
		if got < 10*time.Second || got > MaxTTL {
			t.Fatalf("Cache-Control %q, Expires %q: lifetime %v", cc, expires, got)
		}
	})
}

// TestRedirects: a redirect is followed only to a URL the JWKS URL itself
// could be (https, or http on loopback): keys are never fetched in clear
// text from elsewhere.
func TestRedirects(t *testing.T) {
	is := testpki.NewIssuerKid(t, "k1")
	e := newEndpoint(t, is)
	for target, ok := range map[string]bool{
		e.srv.URL + "/moved":           true,
		"http://keys.example.com/jwks": false,
	} {
		hop := httptest.NewServer(http.RedirectHandler(target, http.StatusFound))
		r, err := New(hop.URL+"/jwks", Options{})
		if err != nil {
			t.Fatal(err)
		}
		_, err = r.Key(context.Background(), "k1")
		if (err == nil) != ok || (!ok && !errors.Is(err, ErrUnavailable)) {
			t.Errorf("redirect to %s: %v", target, err)
		}
		hop.Close()
	}
}
