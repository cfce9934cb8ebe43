// Package auth authenticates the services that call scopegate: bearer
// tokens from a file, client certificates (mTLS), or both. A caller is let
// in when either method vouches for it.
package auth

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
)

// Role separates what a caller may reach: decisions, or also the admin
// endpoints (metrics detail, reloads).
type Role int

const (
	RoleNone Role = iota
	RoleDecide
	RoleAdmin
)

func (r Role) String() string {
	switch r {
	case RoleDecide:
		return "decide"
	case RoleAdmin:
		return "admin"
	}
	return "none"
}

// Caller is who made a request, as far as authentication could tell.
type Caller struct {
	Name   string // token name or certificate subject
	Method string // "token", "mtls" or "none"
	Role   Role
}

type token struct {
	name string
	hash [32]byte
	role Role
}

// Authenticator checks requests. The zero value (no tokens, no client CA)
// lets everyone in as an anonymous decide caller: that is "auth off", which
// serve allows only on loopback unless told otherwise.
type Authenticator struct {
	tokens []token
	// mtls: client certificates are verified by the TLS layer against the
	// client CA; any verified certificate is a decide caller, and these
	// subjects are admins.
	mtls       bool
	mtlsAdmins map[string]bool
}

// Options configure an Authenticator.
type Options struct {
	// TokenFile and AdminTokenFile hold one token per line, optionally
	// preceded by a name: "billing-service 6f1c...". Blank lines and lines
	// starting with # are skipped.
	TokenFile, AdminTokenFile string
	// ClientCAFile turns on mTLS: callers presenting a certificate signed by
	// one of these CAs are let in as decide callers.
	ClientCAFile string
	// AdminSubjects are certificate subjects (CN) that get the admin role.
	AdminSubjects []string
}

// New loads tokens and the client CA.
func New(opts Options) (*Authenticator, error) {
	a := &Authenticator{mtlsAdmins: map[string]bool{}}
	for _, f := range []struct {
		path string
		role Role
	}{{opts.TokenFile, RoleDecide}, {opts.AdminTokenFile, RoleAdmin}} {
		if f.path == "" {
			continue
		}
		toks, err := loadTokens(f.path, f.role)
		if err != nil {
			return nil, err
		}
		a.tokens = append(a.tokens, toks...)
	}
	if opts.ClientCAFile != "" {
		a.mtls = true
		for _, s := range opts.AdminSubjects {
			a.mtlsAdmins[s] = true
		}
	}
	return a, nil
}

// Enabled reports whether any authentication is configured.
func (a *Authenticator) Enabled() bool { return len(a.tokens) > 0 || a.mtls }

const minTokenLen = 16

func loadTokens(path string, role Role) ([]token, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read token file: %w", err)
	}
	var out []token
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		var name, secret string
		switch len(fields) {
		case 1:
			name, secret = fmt.Sprintf("%s:%d", path, n), fields[0]
		case 2:
			name, secret = fields[0], fields[1]
		default:
			return nil, fmt.Errorf("%s:%d: want \"TOKEN\" or \"NAME TOKEN\"", path, n)
		}
		if len(secret) < minTokenLen {
			return nil, fmt.Errorf("%s:%d: token shorter than %d characters", path, n, minTokenLen)
		}
		out = append(out, token{name: name, hash: sha256.Sum256([]byte(secret)), role: role})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no tokens", path)
	}
	return out, sc.Err()
}

// Authenticate returns who r comes from. With auth off everyone is an
// anonymous decide caller; with auth on an unknown caller gets RoleNone.
func (a *Authenticator) Authenticate(r *http.Request) Caller {
	return a.AuthenticateFrom(r, "Authorization")
}

// AuthenticateFrom is Authenticate reading the bearer token from header:
// a gateway's forwarded request carries the end user's Authorization, and
// the gateway's own token in another header.
func (a *Authenticator) AuthenticateFrom(r *http.Request, header string) Caller {
	if !a.Enabled() {
		return Caller{Name: "anonymous", Method: "none", Role: RoleDecide}
	}
	best := Caller{Method: "none", Role: RoleNone}
	if h := r.Header.Get(header); h != "" {
		if scheme, secret, ok := strings.Cut(h, " "); ok && strings.EqualFold(scheme, "Bearer") {
			if t, ok := a.match(strings.TrimSpace(secret)); ok {
				best = Caller{Name: t.name, Method: "token", Role: t.role}
			}
		}
	}
	if a.mtls && r.TLS != nil && len(r.TLS.VerifiedChains) > 0 {
		if c, ok := a.certCaller(r.TLS.VerifiedChains[0][0]); ok && c.Role > best.Role {
			best = c
		}
	}
	return best
}

// oidCommonName is the X.509 attribute type of a subject's CN.
var oidCommonName = asn1.ObjectIdentifier{2, 5, 4, 3}

// certCaller is who a verified client certificate says it is. The admin
// role is matched on the subject's one CN: Go's Subject.CommonName is the
// last of several, so a certificate carrying two CNs (one an admin's)
// would otherwise be read as whichever comes last. A certificate with more
// than one CN is refused as ambiguous; one without a CN is a decide caller
// named by its first SAN.
func (a *Authenticator) certCaller(cert *x509.Certificate) (Caller, bool) {
	var cns []string
	for _, atv := range cert.Subject.Names {
		if atv.Type.Equal(oidCommonName) {
			v, _ := atv.Value.(string)
			cns = append(cns, v)
		}
	}
	switch len(cns) {
	case 1:
		role := RoleDecide
		if a.mtlsAdmins[cns[0]] {
			role = RoleAdmin
		}
		return Caller{Name: cns[0], Method: "mtls", Role: role}, true
	case 0:
		var name string
		switch {
		case len(cert.DNSNames) > 0:
			name = cert.DNSNames[0]
		case len(cert.URIs) > 0:
			name = cert.URIs[0].String()
		case len(cert.EmailAddresses) > 0:
			name = cert.EmailAddresses[0]
		}
		return Caller{Name: name, Method: "mtls", Role: RoleDecide}, true
	}
	return Caller{}, false
}

// match compares against every token in constant time, so response time
// does not reveal how much of a guess was right or which token it was near.
func (a *Authenticator) match(secret string) (token, bool) {
	h := sha256.Sum256([]byte(secret))
	var found token
	ok := 0
	for _, t := range a.tokens {
		eq := subtle.ConstantTimeCompare(h[:], t.hash[:])
		if eq == 1 && t.role >= found.role {
			found = t
		}
		ok |= eq
	}
	return found, ok == 1
}

type callerKey struct{}

// WithCaller stores the caller in a request context.
func WithCaller(ctx context.Context, c Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

// CallerFrom returns the caller stored by WithCaller.
func CallerFrom(ctx context.Context) (Caller, bool) {
	c, ok := ctx.Value(callerKey{}).(Caller)
	return c, ok
}

// TLSOptions configure the server's TLS.
type TLSOptions struct {
	CertFile, KeyFile string
	// ClientCAFile, when set, makes the server ask for client certificates
	// and verify any it gets. None is required at the handshake: probes
	// (/health, /ready) connect without one, and the Authenticator refuses
	// every other path to a caller without a credential.
	ClientCAFile string
}

// ServerTLSConfig builds a TLS config with modern defaults (TLS 1.2+, Go's
// default cipher suites, which are AEAD-only for 1.2 in current Go).
func ServerTLSConfig(o TLSOptions) (*tls.Config, error) {
	if o.CertFile == "" || o.KeyFile == "" {
		return nil, errors.New("TLS needs both a certificate and a key")
	}
	cert, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("load TLS certificate: %w", err)
	}
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
	}
	if o.ClientCAFile != "" {
		pem, err := os.ReadFile(o.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("read client CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s: no PEM certificates", o.ClientCAFile)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
	}
	return cfg, nil
}

// IsLoopback reports whether a listen address only accepts local
// connections ("127.0.0.1:8282", "[::1]:0", "localhost:80").
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// SafeRedirects is an http.Client CheckRedirect that follows a redirect
// only to a URL CheckOutboundURL accepts (an https JWKS URL must not be
// moved to clear text), at most 5 times.
func SafeRedirects(what string) func(*http.Request, []*http.Request) error {
	return func(req *http.Request, via []*http.Request) error {
		if len(via) >= 5 {
			return fmt.Errorf("%s: too many redirects", what)
		}
		return CheckOutboundURL(what+" (redirected)", req.URL.String())
	}
}

// CheckOutboundURL accepts an https URL, and http only on a loopback host
// (tests, a sidecar): what scopegate fetches to check tokens (an issuer's
// keys, an introspection answer) could be swapped in clear text elsewhere.
// what names the URL in errors.
func CheckOutboundURL(what, raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	switch {
	case u.Scheme == "https" && u.Host != "":
		return nil
	case u.Scheme == "http" && u.Host != "" && IsLoopback(net.JoinHostPort(u.Hostname(), "80")):
		return nil
	case u.Scheme == "http":
		return fmt.Errorf("%s %s: http is allowed only on loopback; use https", what, raw)
	}
	return fmt.Errorf("%s %s: want https://", what, raw)
}
