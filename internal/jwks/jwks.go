// Package jwks keeps an issuer's signing keys fetched from its JWKS URL,
// so that a key rotation needs no restart: the set is cached for as long
// as the issuer's Cache-Control (or Expires) says, refreshed in the
// background halfway through that time, and refetched when a token names
// a key the set lacks, at most once every MinRefresh. While the endpoint
// is down the cached keys serve until they expire; after that, and before
// the first fetch succeeds, every lookup fails with ErrUnavailable: the
// token cannot be checked, so the caller denies.
//
// jwx's jwk.Cache refreshes too, but keeps a stale set forever when the
// endpoint fails; expiry, and telling "unknown key" from "no keys now",
// are what a fail-closed verifier needs, so the fetching is done here and
// the parsing by jwx.
package jwks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/scopegate/scopegate/internal/auth"
)

// ErrUnavailable: no current key set (the endpoint is down, slow or
// answering garbage, and the cached set has expired or never was).
var ErrUnavailable = errors.New("the issuer's keys are unavailable")

// ErrUnknownKey: the current key set has no key with that id.
var ErrUnknownKey = errors.New("no such key in the issuer's JWKS")

// Defaults.
const (
	DefaultMinRefresh = 10 * time.Second
	// DefaultTTL is how long a set lives when the issuer sends no
	// Cache-Control max-age or Expires.
	DefaultTTL = time.Hour
	// MaxTTL caps what an issuer's headers can ask for.
	MaxTTL = 24 * time.Hour
	// MaxBytes bounds a JWKS document.
	MaxBytes = 1 << 20
	// FetchTimeout bounds one fetch.
	FetchTimeout = 5 * time.Second
)

// Options configure a Remote.
type Options struct {
	// MinRefresh is the least time between two fetches (an unknown kid
	// cannot make scopegate hammer the issuer); DefaultMinRefresh if 0.
	MinRefresh time.Duration
	// Client fetches; a client with FetchTimeout if nil.
	Client *http.Client
	// Now is the clock; time.Now if nil.
	Now func() time.Time
	// Validate checks a fetched set before it replaces the current one
	// (token.LoadJWKS's rules: public asymmetric keys only).
	Validate func(jwk.Set) error
}

// Remote is one issuer's JWKS URL and the keys last fetched from it.
type Remote struct {
	url  string
	opts Options

	mu        sync.Mutex
	keys      jwk.Set   // nil until a fetch succeeds
	fresh     time.Time // refresh in the background after this
	expires   time.Time // serve keys until this
	lastTry   time.Time // the last fetch started (rate limit)
	fetching  bool
	lastError error
	fetches   int
	failures  int
	gen       atomic.Uint64 // counts the sets installed
}

// CheckURL accepts https URLs, and http only on a loopback host.
func CheckURL(raw string) error { return auth.CheckOutboundURL("JWKS URL", raw) }

// New returns a Remote for rawURL; nothing is fetched until Fetch or Key.
func New(rawURL string, opts Options) (*Remote, error) {
	if err := CheckURL(rawURL); err != nil {
		return nil, err
	}
	if opts.MinRefresh <= 0 {
		opts.MinRefresh = DefaultMinRefresh
	}
	if opts.Client == nil {
		opts.Client = &http.Client{Timeout: FetchTimeout, CheckRedirect: auth.SafeRedirects("JWKS URL")}
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Remote{url: rawURL, opts: opts}, nil
}

// URL is where the keys come from.
func (r *Remote) URL() string { return r.url }

// LastError is the last fetch's error, or nil after a success.
func (r *Remote) LastError() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lastError
}

// Generation changes whenever a fetched set is installed: what was
// verified under an older one is verified again.
func (r *Remote) Generation() uint64 { return r.gen.Load() }

// Stats are for metrics: fetches started, fetches failed, and when the
// current set expires (zero before the first success).
func (r *Remote) Stats() (fetches, failures int, expires time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.fetches, r.failures, r.expires
}

// Fetch fetches the set now (serve does once at start), rate limit aside.
func (r *Remote) Fetch(ctx context.Context) error {
	r.mu.Lock()
	r.lastTry = r.opts.Now()
	r.fetches++
	r.mu.Unlock()
	return r.fetch(ctx)
}

// Key returns the key named kid. A kid the current set lacks triggers a
// refetch, unless one started within MinRefresh; ErrUnknownKey if it is
// still missing, ErrUnavailable if there is no current set.
func (r *Remote) Key(ctx context.Context, kid string) (jwk.Key, error) {
	now := r.opts.Now()
	r.mu.Lock()
	keys, expired := r.keys, r.keys == nil || !now.Before(r.expires)
	if !expired && !now.Before(r.fresh) && !r.fetching && now.Sub(r.lastTry) >= r.opts.MinRefresh {
		r.startLocked(now)
		go func() { _ = r.fetch(context.Background()) }() // keys still serve meanwhile
	}
	r.mu.Unlock()
	if !expired {
		if k, ok := keys.LookupKeyID(kid); ok {
			return k, nil
		}
	}
	// No current set, or no such key in it: fetch now if allowed.
	r.mu.Lock()
	can := !r.fetching && now.Sub(r.lastTry) >= r.opts.MinRefresh
	if can {
		r.startLocked(now)
	}
	lastErr := r.lastError
	r.mu.Unlock()
	var fetchErr error
	if can {
		// Not cancelled with the request: the fetch serves every request
		// after it, and a client hanging up must not make it fail (and
		// hold off the next one for MinRefresh). The client's timeout
		// bounds it.
		fetchErr = r.fetch(context.WithoutCancel(ctx))
		lastErr = fetchErr
	}
	r.mu.Lock()
	keys, expired = r.keys, r.keys == nil || !r.opts.Now().Before(r.expires)
	r.mu.Unlock()
	if expired {
		if lastErr == nil {
			lastErr = errors.New("no keys fetched yet")
		}
		return nil, fmt.Errorf("%w: %s: %v", ErrUnavailable, r.url, lastErr)
	}
	if k, ok := keys.LookupKeyID(kid); ok {
		return k, nil
	}
	if fetchErr != nil {
		// The key may be a new one the issuer cannot tell us about now.
		return nil, fmt.Errorf("%w: key %q is not in the cached set, and %s: %v", ErrUnavailable, kid, r.url, fetchErr)
	}
	return nil, fmt.Errorf("%w: %q", ErrUnknownKey, kid)
}

func (r *Remote) startLocked(now time.Time) {
	r.fetching = true
	r.lastTry = now
	r.fetches++
}

// fetch gets and installs the set; on failure the current one stays.
func (r *Remote) fetch(ctx context.Context) error {
	keys, ttl, err := r.get(ctx)
	now := r.opts.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fetching = false
	r.lastError = err
	if err != nil {
		r.failures++
		return err
	}
	r.keys = keys
	r.gen.Add(1)
	r.expires = now.Add(ttl)
	r.fresh = now.Add(ttl / 2)
	return nil
}

func (r *Remote) get(ctx context.Context) (jwk.Set, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.url, nil)
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := r.opts.Client.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, 0, fmt.Errorf("GET %s: %s", r.url, resp.Status)
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, MaxBytes+1))
	if err != nil {
		return nil, 0, err
	}
	if len(raw) > MaxBytes {
		return nil, 0, fmt.Errorf("GET %s: JWKS over %d bytes", r.url, MaxBytes)
	}
	set, err := jwk.Parse(raw)
	if err != nil {
		return nil, 0, fmt.Errorf("GET %s: %w", r.url, err)
	}
	if r.opts.Validate != nil {
		if err := r.opts.Validate(set); err != nil {
			return nil, 0, fmt.Errorf("GET %s: %w", r.url, err)
		}
	}
	return set, lifetime(resp.Header, r.opts.Now(), r.opts.MinRefresh), nil
}

// lifetime is how long a fetched set may serve: Cache-Control max-age (or
// s-maxage), else Expires, else DefaultTTL; no-store or no-cache mean
// "refetch at the next chance" (MinRefresh); at most MaxTTL.
func lifetime(h http.Header, now time.Time, floor time.Duration) time.Duration {
	ttl := time.Duration(-1)
	for _, d := range strings.Split(h.Get("Cache-Control"), ",") {
		name, val, _ := strings.Cut(strings.TrimSpace(strings.ToLower(d)), "=")
		switch name {
		case "no-store", "no-cache":
			return floor
		case "max-age", "s-maxage":
			if n, err := strconv.Atoi(strings.Trim(val, `"`)); err == nil && n >= 0 {
				ttl = time.Duration(n) * time.Second
			}
		}
	}
	if ttl < 0 {
		if t, err := http.ParseTime(h.Get("Expires")); err == nil {
			ttl = max(t.Sub(now), 0)
		}
	}
	switch {
	case ttl < 0:
		ttl = DefaultTTL
	case ttl > MaxTTL:
		ttl = MaxTTL
	}
	return max(ttl, floor)
}
