package introspect

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// stub is an authorization server's introspection endpoint.
type stub struct {
	mu     sync.Mutex
	answer func(token string) (int, any)
	delay  time.Duration
	calls  atomic.Int64
	srv    *httptest.Server
}

func newStub(t *testing.T) *stub {
	s := &stub{}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.calls.Add(1)
		id, secret, ok := r.BasicAuth()
		if !ok || id != "scopegate%3Ars" || secret != "s3cret%2B%2F" {
			// RFC 6749 2.3.1: each part form-urlencoded before Basic.
			http.Error(w, "bad client", http.StatusUnauthorized)
			return
		}
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		_ = r.ParseForm()
		s.mu.Lock()
		answer, delay := s.answer, s.delay
		s.mu.Unlock()
		if delay > 0 {
			select {
			case <-time.After(delay):
			case <-r.Context().Done():
				return
			}
		}
		status, body := answer(r.PostForm.Get("token"))
		w.WriteHeader(status)
		if b, ok := body.(string); ok {
			_, _ = w.Write([]byte(b))
			return
		}
		_ = json.NewEncoder(w).Encode(body)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *stub) set(f func(*stub)) { s.mu.Lock(); f(s); s.mu.Unlock() }

func client(t *testing.T, s *stub, now func() time.Time) *Client {
	c, err := New(Options{URL: s.srv.URL + "/introspect", ClientID: "scopegate:rs", ClientSecret: "s3cret+/",
		TTL: time.Minute, Timeout: 200 * time.Millisecond, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestIntrospect(t *testing.T) {
	s := newStub(t)
	now := time.Unix(1_800_000_000, 0)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	s.set(func(s *stub) {
		s.answer = func(tok string) (int, any) {
			switch tok {
			case "live":
				return 200, map[string]any{"active": true, "scope": "project:read user:read", "sub": "user-7", "client_id": "app",
					"exp": clock().Add(30 * time.Second).Unix()}
			case "long":
				return 200, map[string]any{"active": true, "scope": "user:read", "exp": clock().Add(time.Hour).Unix()}
			case "stale":
				return 200, map[string]any{"active": true, "exp": clock().Add(-time.Second).Unix()}
			}
			return 200, map[string]any{"active": false}
		}
	})
	c := client(t, s, clock)
	ctx := context.Background()
	r, err := c.Introspect(ctx, "live")
	if err != nil || !r.Active || r.Claims["sub"] != "user-7" || r.Claims["scope"] != "project:read user:read" {
		t.Fatalf("active: %+v %v", r, err)
	}
	if r, err := c.Introspect(ctx, "revoked"); err != nil || r.Active {
		t.Errorf("inactive: %+v %v", r, err)
	}
	if r, err := c.Introspect(ctx, "stale"); err != nil || r.Active {
		t.Errorf("active but past exp: %+v %v", r, err)
	}
	// Cached: no second call within the TTL and exp.
	calls := s.calls.Load()
	for range 10 {
		c.Introspect(ctx, "live")
		c.Introspect(ctx, "revoked")
	}
	if s.calls.Load() != calls {
		t.Errorf("%d calls for cached answers", s.calls.Load()-calls)
	}
	// Cached until the earlier of exp (30 s) and the TTL (1 min).
	advance(31 * time.Second)
	c.Introspect(ctx, "live")
	c.Introspect(ctx, "long")
	advance(20 * time.Second)
	c.Introspect(ctx, "long") // within the TTL: cached
	if got := s.calls.Load() - calls; got != 2 {
		t.Errorf("%d calls, want 2 (live past its exp, long once)", got)
	}
	advance(41 * time.Second) // past the TTL
	c.Introspect(ctx, "long")
	if got := s.calls.Load() - calls; got != 3 {
		t.Errorf("%d calls, want 3 (long past the TTL)", got)
	}
}

// TestUnavailable: 500, garbage, no active member, a wrong client, a slow
// or unreachable endpoint are ErrUnavailable, and never cached.
func TestUnavailable(t *testing.T) {
	s := newStub(t)
	c := client(t, s, nil)
	for name, tc := range map[string]struct {
		status int
		body   any
		delay  time.Duration
	}{
		"500":       {500, "oops", 0},
		"garbage":   {200, "<html>", 0},
		"no active": {200, map[string]any{"scope": "x"}, 0},
		"slow":      {200, map[string]any{"active": true}, time.Second},
		"huge":      {200, map[string]any{"active": true, "pad": strings.Repeat("a", MaxResponseBytes)}, 0},
	} {
		s.set(func(s *stub) {
			s.answer = func(string) (int, any) { return tc.status, tc.body }
			s.delay = tc.delay
		})
		start := time.Now()
		if _, err := c.Introspect(context.Background(), "tok-"+name); !errors.Is(err, ErrUnavailable) {
			t.Errorf("%s: %v", name, err)
		}
		if time.Since(start) > 800*time.Millisecond {
			t.Errorf("%s: waited %v past the 200ms deadline", name, time.Since(start))
		}
	}
	s.set(func(s *stub) {
		s.delay = 0
		s.answer = func(string) (int, any) { return 200, map[string]any{"active": true} }
	})
	if r, err := c.Introspect(context.Background(), "tok-500"); err != nil || !r.Active {
		t.Errorf("a failure was cached: %+v %v", r, err)
	}
	wrong, _ := New(Options{URL: s.srv.URL, ClientID: "other", ClientSecret: "x"})
	if _, err := wrong.Introspect(context.Background(), "t"); !errors.Is(err, ErrUnavailable) {
		t.Errorf("refused client: %v", err)
	}
	s.srv.Close()
	if _, err := c.Introspect(context.Background(), "new"); !errors.Is(err, ErrUnavailable) || strings.Contains(err.Error(), "new") {
		t.Errorf("unreachable: %v", err)
	}
}

// TestCacheBoundedInBytes: a flood of distinct tokens keeps the cache
// within its budget, and the cache never holds a token.
func TestCacheBoundedInBytes(t *testing.T) {
	s := newStub(t)
	s.set(func(s *stub) {
		s.answer = func(tok string) (int, any) {
			return 200, map[string]any{"active": true, "scope": strings.Repeat("s ", 100), "sub": tok}
		}
	})
	c, err := New(Options{URL: s.srv.URL, ClientID: "scopegate:rs", ClientSecret: "s3cret+/", CacheBytes: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2000 {
		if _, err := c.Introspect(context.Background(), "token-"+strings.Repeat("x", i%40)+url.QueryEscape(time.Duration(i).String())); err != nil {
			t.Fatal(err)
		}
		if b := c.cache.Bytes(); b > 64<<10 {
			t.Fatalf("cache holds %d bytes", b)
		}
	}
}

func TestNewRefuses(t *testing.T) {
	for name, o := range map[string]Options{
		"http off loopback": {URL: "http://as.example.com/introspect", ClientID: "a", ClientSecret: "b"},
		"no secret":         {URL: "https://as.example.com/introspect", ClientID: "a"},
		"no id":             {URL: "https://as.example.com/introspect", ClientSecret: "b"},
		"not a URL":         {URL: "as.example.com", ClientID: "a", ClientSecret: "b"},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestInFlightBounded: a flood of distinct tokens (each a cache miss)
// never has more than MaxInFlight calls at the endpoint: the rest wait for
// a slot, and past the timeout are ErrUnavailable.
func TestInFlightBounded(t *testing.T) {
	s := newStub(t)
	var now, peak atomic.Int64
	s.set(func(s *stub) {
		s.answer = func(string) (int, any) {
			n := now.Add(1)
			for {
				p := peak.Load()
				if n <= p || peak.CompareAndSwap(p, n) {
					break
				}
			}
			time.Sleep(50 * time.Millisecond)
			now.Add(-1)
			return 200, map[string]any{"active": false}
		}
	})
	flood := func(timeout time.Duration) (unavailable int64) {
		c, err := New(Options{URL: s.srv.URL, ClientID: "scopegate:rs", ClientSecret: "s3cret+/", MaxInFlight: 4, Timeout: timeout})
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		var n atomic.Int64
		for i := range 40 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := c.Introspect(context.Background(), "flood-"+strings.Repeat("x", i)); errors.Is(err, ErrUnavailable) {
					n.Add(1)
				}
			}()
		}
		wg.Wait()
		return n.Load()
	}
	// Time enough for all: 40 calls of 50 ms through 4 slots take 0.5 s.
	start := time.Now()
	if n := flood(5 * time.Second); n != 0 {
		t.Errorf("%d of 40 unavailable with time enough", n)
	}
	if p := peak.Load(); p > 4 || p == 0 {
		t.Errorf("peak %d calls in flight, bound 4", p)
	}
	if d := time.Since(start); d < 450*time.Millisecond {
		t.Errorf("40 calls of 50 ms took %v: not queued through 4 slots", d)
	}
	// Not enough time: the calls that find no slot in time are refused.
	if n := flood(120 * time.Millisecond); n == 0 {
		t.Error("40 slow calls through 4 slots in 120 ms all succeeded")
	}
}

// FuzzAnswer: any answer is either ErrUnavailable or a result whose
// Active is the answer's boolean active; an inactive one carries nothing
// else.
func FuzzAnswer(f *testing.F) {
	f.Add([]byte(`{"active":true,"scope":"a b","exp":1800000000}`))
	f.Add([]byte(`{"active":false,"scope":"admin"}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"active":"true"}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		r, err := parseAnswer(raw)
		if err != nil {
			if !errors.Is(err, ErrUnavailable) {
				t.Fatalf("error not ErrUnavailable: %v", err)
			}
			return
		}
		if r.Claims["active"] != r.Active {
			t.Fatalf("Active %v, claims %v", r.Active, r.Claims)
		}
		if !r.Active && len(r.Claims) != 1 {
			t.Fatalf("an inactive answer kept claims: %v", r.Claims)
		}
	})
}

// TestNoRedirects: an endpoint that redirects is unavailable, and the
// token (in the body) goes nowhere else.
func TestNoRedirects(t *testing.T) {
	var got atomic.Int64
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Add(1)
		_, _ = w.Write([]byte(`{"active":true}`))
	}))
	defer elsewhere.Close()
	hop := httptest.NewServer(http.RedirectHandler(elsewhere.URL, http.StatusTemporaryRedirect))
	defer hop.Close()
	c, err := New(Options{URL: hop.URL, ClientID: "a", ClientSecret: "b"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Introspect(context.Background(), "opaque-secret-token"); !errors.Is(err, ErrUnavailable) || got.Load() != 0 {
		t.Errorf("307: %v, %d requests elsewhere", err, got.Load())
	}
}

// TestConcurrentMissesShareOneCall: a burst of requests with one new
// token makes one call, and every request gets its answer.
func TestConcurrentMissesShareOneCall(t *testing.T) {
	s := newStub(t)
	s.set(func(s *stub) {
		s.delay = 100 * time.Millisecond
		s.answer = func(string) (int, any) { return 200, map[string]any{"active": true, "scope": "user:read"} }
	})
	c := client(t, s, nil)
	var wg sync.WaitGroup
	var active atomic.Int64
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r, err := c.Introspect(context.Background(), "burst-token"); err == nil && r.Active {
				active.Add(1)
			}
		}()
	}
	wg.Wait()
	if n := s.calls.Load(); n != 1 || active.Load() != 20 {
		t.Errorf("%d calls for one token's burst, %d of 20 answered active", n, active.Load())
	}
}
