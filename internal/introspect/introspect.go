// Package introspect asks an authorization server about opaque access
// tokens (RFC 7662 OAuth 2.0 Token Introspection): a form POST of the
// token, authenticated as the resource server with HTTP Basic client
// credentials (section 2.1), answered with {"active": ...} and the token's
// claims. Answers are cached by the token's SHA-256, never the token,
// until the earlier of its exp and a TTL, in a cache bounded in bytes. An
// endpoint that is unreachable, slow, failing or answering garbage gives
// ErrUnavailable: the caller denies.
package introspect

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/scopegate/scopegate/internal/auth"
	"github.com/scopegate/scopegate/internal/bytecache"
)

// ErrUnavailable: the endpoint could not say whether the token is active.
var ErrUnavailable = errors.New("the introspection endpoint is unavailable")

// Defaults.
const (
	DefaultTTL        = 2 * time.Minute
	DefaultCacheBytes = 16 << 20
	DefaultTimeout    = 2 * time.Second
	// DefaultMaxInFlight bounds concurrent calls: distinct tokens miss the
	// cache, and a flood of them must not become a flood of connections
	// to the authorization server.
	DefaultMaxInFlight = 64
	// MaxResponseBytes bounds one answer.
	MaxResponseBytes = 64 << 10
)

// Options configure a Client.
type Options struct {
	URL          string
	ClientID     string
	ClientSecret string
	// TTL caps how long an answer is reused (also an inactive one);
	// DefaultTTL if 0.
	TTL time.Duration
	// CacheBytes bounds the cache; DefaultCacheBytes if 0, none if < 0.
	CacheBytes int64
	// Timeout bounds one call, waiting for a slot included; DefaultTimeout
	// if 0.
	Timeout time.Duration
	// MaxInFlight bounds concurrent calls (and connections to the
	// endpoint); DefaultMaxInFlight if 0.
	MaxInFlight int
	// Client makes the calls; a fresh one if nil.
	Client *http.Client
	Now    func() time.Time
}

// Result is the endpoint's answer about one token.
type Result struct {
	Active bool
	// Claims are the answer's members (scope, client_id, sub, exp, ...),
	// active included.
	Claims map[string]any
}

type entry struct {
	res   Result
	until time.Time
}

// Client introspects tokens.
type Client struct {
	opts   Options
	cache  *bytecache.Cache[entry]
	slots  chan struct{} // one per call in flight
	flight singleflight.Group

	calls, failures atomic.Uint64
}

// Stats are for metrics: calls made, calls that failed (ErrUnavailable),
// and the cache's hits, misses and bytes.
func (c *Client) Stats() (calls, failures, hits, misses uint64, cacheBytes int64) {
	if c.cache != nil {
		hits, misses, _ = c.cache.Stats()
		cacheBytes = c.cache.Bytes()
	}
	return c.calls.Load(), c.failures.Load(), hits, misses, cacheBytes
}

// New checks opts and returns a Client. The URL must be https, or http on
// a loopback host; client credentials are required (RFC 7662 section 2.1
// has the resource server authenticate, so the endpoint cannot be used to
// scan for tokens).
func New(opts Options) (*Client, error) {
	if err := auth.CheckOutboundURL("introspection URL", opts.URL); err != nil {
		return nil, err
	}
	if opts.ClientID == "" || opts.ClientSecret == "" {
		return nil, errors.New("introspection needs a client id and a client secret")
	}
	if opts.TTL == 0 {
		opts.TTL = DefaultTTL
	}
	if opts.Timeout == 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.MaxInFlight <= 0 {
		opts.MaxInFlight = DefaultMaxInFlight
	}
	if opts.Client == nil {
		opts.Client = &http.Client{CheckRedirect: noRedirects, Transport: &http.Transport{
			Proxy: http.ProxyFromEnvironment, MaxConnsPerHost: opts.MaxInFlight, MaxIdleConnsPerHost: opts.MaxInFlight,
			IdleConnTimeout: 90 * time.Second, TLSHandshakeTimeout: opts.Timeout, ForceAttemptHTTP2: true,
		}}
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	c := &Client{opts: opts, slots: make(chan struct{}, opts.MaxInFlight)}
	switch {
	case opts.CacheBytes == 0:
		c.cache = bytecache.New[entry](DefaultCacheBytes)
	case opts.CacheBytes > 0:
		c.cache = bytecache.New[entry](opts.CacheBytes)
	}
	return c, nil
}

// noRedirects: an introspection endpoint does not move, and following a
// 307 would send the token in the body to wherever it points.
func noRedirects(req *http.Request, _ []*http.Request) error {
	return fmt.Errorf("the introspection endpoint redirected to %s: not followed", req.URL.Redacted())
}

// Introspect asks about token, or answers from the cache.
func (c *Client) Introspect(ctx context.Context, token string) (Result, error) {
	sum := sha256.Sum256([]byte(token))
	key := string(sum[:])
	now := c.opts.Now()
	if c.cache != nil {
		if e, ok := c.cache.GetFresh(key, func(e entry) bool { return now.Before(e.until) }); ok {
			return e.res, nil
		}
	}
	// Requests that miss together on one token (a user's burst at the
	// start of a session) share one call. It is not cancelled with the
	// first of them: its answer serves the others; c.opts.Timeout bounds it.
	ch := c.flight.DoChan(key, func() (any, error) {
		return c.fetch(context.WithoutCancel(ctx), token, key, now)
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return Result{}, r.Err
		}
		return r.Val.(Result), nil
	case <-ctx.Done():
		return Result{}, fmt.Errorf("%w: %v", ErrUnavailable, ctx.Err())
	}
}

// fetch calls the endpoint about token and caches the answer under key.
func (c *Client) fetch(ctx context.Context, token, key string, now time.Time) (Result, error) {
	c.calls.Add(1)
	res, err := c.call(ctx, token)
	if err != nil {
		c.failures.Add(1)
		return Result{}, err
	}
	res.Active = res.Active && c.current(res.Claims, now)
	if c.cache != nil {
		until := now.Add(c.opts.TTL)
		if exp, ok := number(res.Claims["exp"]); ok && res.Active && time.Unix(exp, 0).Before(until) {
			until = time.Unix(exp, 0)
		}
		size := int64(len(key)) + claimBytes(res.Claims) + 128
		c.cache.Replace(key, entry{res, until}, size) // a stale entry may still be cached
	}
	return res, nil
}

// current: an active answer whose exp has passed or whose nbf is ahead is
// not acted on.
func (c *Client) current(claims map[string]any, now time.Time) bool {
	if exp, ok := number(claims["exp"]); ok && !now.Before(time.Unix(exp, 0)) {
		return false
	}
	if nbf, ok := number(claims["nbf"]); ok && now.Before(time.Unix(nbf, 0)) {
		return false
	}
	return true
}

func (c *Client) call(ctx context.Context, token string) (Result, error) {
	ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	select {
	case c.slots <- struct{}{}:
		defer func() { <-c.slots }()
	case <-ctx.Done():
		return Result{}, fmt.Errorf("%w: %d calls already in flight", ErrUnavailable, cap(c.slots))
	}
	form := url.Values{"token": {token}, "token_type_hint": {"access_token"}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.opts.URL, strings.NewReader(form))
	if err != nil {
		return Result{}, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	// RFC 6749 section 2.3.1: the credentials are form-urlencoded first.
	req.SetBasicAuth(url.QueryEscape(c.opts.ClientID), url.QueryEscape(c.opts.ClientSecret))
	resp, err := c.opts.Client.Do(req)
	if err != nil {
		// The error may quote the request URL, never the form: the token
		// is in the body.
		return Result{}, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Result{}, fmt.Errorf("%w: %s answered %s", ErrUnavailable, c.opts.URL, resp.Status)
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBytes+1))
	if err != nil {
		return Result{}, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	if len(raw) > MaxResponseBytes {
		return Result{}, fmt.Errorf("%w: answer over %d bytes", ErrUnavailable, MaxResponseBytes)
	}
	return parseAnswer(raw)
}

// parseAnswer reads an introspection answer: a JSON object with a boolean
// active (RFC 7662 section 2.2); anything else is ErrUnavailable.
func parseAnswer(raw []byte) (Result, error) {
	var claims map[string]any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&claims); err != nil || claims == nil {
		return Result{}, fmt.Errorf("%w: the answer is not a JSON object", ErrUnavailable)
	}
	active, ok := claims["active"].(bool)
	if !ok {
		return Result{}, fmt.Errorf("%w: the answer has no boolean active", ErrUnavailable)
	}
	if !active {
		return Result{Active: false, Claims: map[string]any{"active": false}}, nil // nothing else is meaningful
	}
	return Result{Active: true, Claims: claims}, nil
}

func number(v any) (int64, bool) {
	switch n := v.(type) {
	case json.Number:
		if i, err := n.Int64(); err == nil {
			return i, true
		}
		if f, err := n.Float64(); err == nil {
			return int64(f), true
		}
	case float64:
		return int64(n), true
	}
	return 0, false
}

// claimBytes estimates what claims hold: their JSON size, doubled for the
// maps' and interfaces' overhead.
func claimBytes(claims map[string]any) int64 {
	raw, _ := json.Marshal(claims)
	return 2 * int64(len(raw))
}
