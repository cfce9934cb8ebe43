package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"time"

	"github.com/spf13/pflag"

	"github.com/scopegate/scopegate/internal/auth"
	"github.com/scopegate/scopegate/internal/connlimit"
)

// securityConfig is who may call the server and how it speaks TLS.
type securityConfig struct {
	tokens, adminTokens string
	tlsCert, tlsKey     string
	clientCA            string
	mtlsAdmins          []string
	insecureNoAuth      bool
	allowedHosts        []string

	// Slow or stuck clients are cut off by these, so they cannot hold
	// connections (and goroutines) forever.
	readHeaderTimeout, readTimeout, writeTimeout, idleTimeout time.Duration
	// maxConns bounds open connections below the fd limit; past three
	// quarters of it, idle ones are closed after pressureIdle.
	maxConns     int
	pressureIdle time.Duration
}

func addSecurityFlags(f *pflag.FlagSet, c *securityConfig) {
	f.StringVar(&c.tokens, "auth-tokens", "", `file of bearer tokens allowed to call /v1/*, one "NAME TOKEN" per line`)
	f.StringVar(&c.adminTokens, "admin-tokens", "", "file of bearer tokens for admin endpoints (/metrics, /v1/admin/*) and /v1/*")
	f.StringVar(&c.tlsCert, "tls-cert", "", "serve HTTPS with this certificate (PEM)")
	f.StringVar(&c.tlsKey, "tls-key", "", "private key for --tls-cert (PEM)")
	f.StringVar(&c.clientCA, "tls-client-ca", "", "accept client certificates signed by these CAs (mTLS); needs --tls-cert")
	f.StringSliceVar(&c.mtlsAdmins, "mtls-admin", nil, "client certificate subject CNs that get the admin role (repeatable)")
	f.BoolVar(&c.insecureNoAuth, "insecure-no-auth", false, "allow serving without authentication on a non-loopback address")
	f.StringSliceVar(&c.allowedHosts, "allowed-host", nil, "with authentication off, also answer requests whose Host is this name (repeatable); loopback names, IP addresses and --addr's host always are")
	f.DurationVar(&c.readHeaderTimeout, "read-header-timeout", 5*time.Second, "time a client has to send request headers")
	f.DurationVar(&c.readTimeout, "read-timeout", 10*time.Second, "time a client has to send a whole request")
	f.DurationVar(&c.writeTimeout, "write-timeout", 15*time.Second, "time to answer a request, from the end of its headers")
	f.DurationVar(&c.idleTimeout, "idle-timeout", 120*time.Second, "how long an idle keep-alive connection is kept")
	f.IntVar(&c.maxConns, "max-connections", connlimit.DefaultMax(), "most connections open at once (default: the file-descriptor limit less 128, at most 10000); past it the longest-idle one is closed")
	f.DurationVar(&c.pressureIdle, "idle-timeout-under-pressure", 5*time.Second, "past three quarters of --max-connections, how long an idle connection is kept")
}

// hostsAllowed are the Host names a server with authentication off answers
// besides loopback names and IP addresses: --addr's host and --allowed-host.
func (c securityConfig) hostsAllowed(addr string) []string {
	hosts := slices.Clone(c.allowedHosts)
	if h, _, err := net.SplitHostPort(addr); err == nil && h != "" {
		hosts = append(hosts, h)
	}
	return hosts
}

// build checks the combination and returns the authenticator and the TLS
// config (nil for plain HTTP). Without any authentication the server only
// listens on loopback, unless the operator explicitly says otherwise.
func (c securityConfig) build(addr string, logger *slog.Logger) (*auth.Authenticator, *tls.Config, error) {
	if (c.tlsCert == "") != (c.tlsKey == "") {
		return nil, nil, errors.New("--tls-cert and --tls-key go together")
	}
	if c.clientCA != "" && c.tlsCert == "" {
		return nil, nil, errors.New("--tls-client-ca needs --tls-cert and --tls-key")
	}
	a, err := auth.New(auth.Options{TokenFile: c.tokens, AdminTokenFile: c.adminTokens, ClientCAFile: c.clientCA, AdminSubjects: c.mtlsAdmins})
	if err != nil {
		return nil, nil, err
	}
	if !a.Enabled() {
		if !auth.IsLoopback(addr) && !c.insecureNoAuth {
			return nil, nil, fmt.Errorf("refusing to serve %s without authentication: give --auth-tokens or --tls-client-ca, or --insecure-no-auth", addr)
		}
		logger.Warn("authentication is off: any caller that can connect may ask for decisions", "addr", addr)
	}
	var tlsCfg *tls.Config
	if c.tlsCert != "" {
		// A client certificate is verified when given, never demanded at
		// the handshake: probes connect without one, and with mTLS alone
		// every other path still needs it (the Authenticator refuses a
		// caller without a credential with 401).
		tlsCfg, err = auth.ServerTLSConfig(auth.TLSOptions{CertFile: c.tlsCert, KeyFile: c.tlsKey, ClientCAFile: c.clientCA})
		if err != nil {
			return nil, nil, err
		}
	}
	return a, tlsCfg, nil
}
