package bundle

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/scopegate/scopegate/internal/source"
)

// WatchOptions configure a Watcher.
type WatchOptions struct {
	// Load says how bundles are read and verified.
	Load LoadOptions
	// Interval between polls; zero means Run returns at once (load once).
	Interval time.Duration
	// Client fetches HTTP bundles; defaults to a plain http.Client.
	Client *http.Client
	// Timeout bounds one HTTP fetch; defaults to 30s.
	Timeout time.Duration
	// MaxBytes bounds a downloaded or local archive; defaults to
	// DefaultFileSizeLimit.
	MaxBytes int64
	// BearerToken, when set, is sent as Authorization: Bearer on HTTP fetches.
	BearerToken string
	// Logger reports fetch details (unchanged bundles at debug level).
	Logger *slog.Logger
}

// Watcher loads a bundle from a directory, a .tar.gz file or an HTTP(S)
// URL into a Manager, and polls it for changes. Local bundles are compared
// by content hash; HTTP bundles by ETag (If-None-Match, 304 Not Modified),
// as OPA's bundle service protocol does. A bundle that was refused is not
// retried until its content changes.
type Watcher struct {
	location string
	origin   string // location safe to show: no credentials or query
	isHTTP   bool
	m        *Manager
	opts     WatchOptions

	mu          sync.Mutex // one poll at a time
	fingerprint string     // sha256 of the last bundle content handed to the manager
	etag        string     // ETag of that content, for HTTP
}

// NewWatcher returns a watcher for location: a directory, a .tar.gz file
// or an http(s):// URL.
func NewWatcher(location string, m *Manager, opts WatchOptions) (*Watcher, error) {
	if location == "" {
		return nil, errors.New("no bundle location")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Client == nil {
		opts.Client = &http.Client{}
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Second
	}
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = DefaultFileSizeLimit
	}
	w := &Watcher{location: location, origin: location, m: m, opts: opts}
	if strings.HasPrefix(location, "http://") || strings.HasPrefix(location, "https://") {
		u, err := url.Parse(location)
		if err != nil {
			return nil, fmt.Errorf("bundle URL: %w", err)
		}
		if u.Host == "" {
			return nil, fmt.Errorf("bundle URL %q has no host", location)
		}
		w.isHTTP = true
		w.origin = (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String()
	}
	return w, nil
}

// Origin is the location as shown in logs and on /ready.
func (w *Watcher) Origin() string { return w.origin }

// Run polls every Interval until ctx is done. It does not poll at once:
// call Poll first for the initial load.
func (w *Watcher) Run(ctx context.Context) {
	if w.opts.Interval <= 0 {
		return
	}
	t := time.NewTicker(w.opts.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_, _ = w.Poll(ctx)
		}
	}
}

// Poll checks the location once. It returns true when a new bundle was
// activated. An error means the location could not be read or the bundle
// was refused; either way the manager recorded it and kept its policy.
func (w *Watcher) Poll(ctx context.Context) (bool, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	var (
		src  *source.Source
		err  error
		seen bool
	)
	prevPrint, prevTag := w.fingerprint, w.etag
	if w.isHTTP {
		src, seen, err = w.pollHTTP(ctx)
	} else {
		src, seen, err = w.pollPath()
	}
	if seen {
		w.opts.Logger.Debug("bundle unchanged", "source", w.origin)
		return false, nil
	}
	if err == nil {
		err = w.m.Activate(ctx, src, w.origin)
		if err == nil {
			return true, nil
		}
	} else {
		w.m.Fail(w.origin, err)
	}
	if ctx.Err() != nil {
		// Cancelled mid-load: that says nothing about the bundle; retry it.
		w.fingerprint, w.etag = prevPrint, prevTag
	}
	return false, err
}

func (w *Watcher) pollPath() (*source.Source, bool, error) {
	fi, err := os.Stat(w.location)
	if err != nil {
		return nil, false, stageErr(StageFetch, err)
	}
	if fi.IsDir() {
		sum, err := treeFingerprint(w.location, w.opts.Load.sizeLimit())
		if err != nil {
			return nil, false, stageErr(StageFetch, err)
		}
		if sum == w.fingerprint {
			return nil, true, nil
		}
		w.fingerprint = sum
		src, err := ReadDir(w.location, w.opts.Load)
		// A directory being rewritten file by file (say by `scopegate
		// build`) can be read half old, half new. Only a directory that
		// did not change while it was read is used.
		if after, ferr := treeFingerprint(w.location, w.opts.Load.sizeLimit()); ferr != nil || after != sum {
			w.fingerprint = ""
			return nil, false, stageErr(StageFetch, errors.New("the bundle directory changed while it was read; reading it again at the next poll"))
		}
		return src, false, err
	}
	if fi.Size() > w.opts.MaxBytes {
		return nil, false, stageErr(StageFetch, fmt.Errorf("%s is %d bytes, over the %d byte limit", w.location, fi.Size(), w.opts.MaxBytes))
	}
	raw, err := os.ReadFile(w.location)
	if err != nil {
		return nil, false, stageErr(StageFetch, err)
	}
	sum := hashBytes(raw)
	if sum == w.fingerprint {
		return nil, true, nil
	}
	w.fingerprint = sum
	src, err := ReadTarGz(raw, w.opts.Load)
	return src, false, err
}

func (w *Watcher) pollHTTP(ctx context.Context) (*source.Source, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, w.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, w.location, nil)
	if err != nil {
		return nil, false, stageErr(StageFetch, err)
	}
	req.Header.Set("Accept", "application/vnd.openpolicyagent.bundles, application/gzip, application/octet-stream")
	if w.etag != "" {
		req.Header.Set("If-None-Match", w.etag)
	}
	if w.opts.BearerToken != "" {
		req.Header.Set("Authorization", "Bearer "+w.opts.BearerToken)
	}
	resp, err := w.opts.Client.Do(req)
	if err != nil {
		return nil, false, stageErr(StageFetch, fmt.Errorf("GET %s: %w", w.origin, scrubURLError(err)))
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotModified:
		return nil, true, nil
	default:
		return nil, false, stageErr(StageFetch, fmt.Errorf("GET %s: %s", w.origin, resp.Status))
	}
	raw, err := readLimited(resp.Body, w.opts.MaxBytes)
	if err != nil {
		return nil, false, stageErr(StageFetch, fmt.Errorf("GET %s: %w", w.origin, err))
	}
	sum := hashBytes(raw)
	etag := resp.Header.Get("ETag")
	if sum == w.fingerprint {
		// A server that ignores If-None-Match: same bytes, nothing to do.
		w.etag = etag
		return nil, true, nil
	}
	w.fingerprint, w.etag = sum, etag
	src, err := ReadTarGz(raw, w.opts.Load)
	return src, false, err
}

// scrubURLError drops the URL (it may carry a query with credentials)
// from a client error; the caller names the origin instead.
func scrubURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func hashBytes(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// treeFingerprint hashes every regular file's path and content under dir.
func treeFingerprint(dir string, limit int64) (string, error) {
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	sort.Strings(files)
	h := sha256.New()
	for _, p := range files {
		f, err := os.Open(p)
		if err != nil {
			return "", err
		}
		b, err := readLimited(f, limit)
		f.Close()
		if err != nil {
			return "", fmt.Errorf("%s: %w", p, err)
		}
		rel, _ := filepath.Rel(dir, p)
		fmt.Fprintf(h, "%s\x00%d\x00", filepath.ToSlash(rel), len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
