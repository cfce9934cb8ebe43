package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/spf13/pflag"
	"golang.org/x/net/netutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"

	"github.com/scopegate/scopegate/internal/auth"
	"github.com/scopegate/scopegate/internal/extauthz"
)

// gatewayConfig: the gateway adapters' settings (the HTTP forward-auth
// endpoint is always on; Envoy's gRPC ext_authz only with --grpc-addr).
type gatewayConfig struct {
	grpcAddr string
	dryRun   bool
}

func (c *gatewayConfig) register(f *pflag.FlagSet) {
	f.StringVar(&c.grpcAddr, "grpc-addr", "", "serve Envoy's ext_authz v3 gRPC service (envoy.service.auth.v3.Authorization) on this address, e.g. 127.0.0.1:9191 (empty: off)")
	f.BoolVar(&c.dryRun, "gateway-dry-run", false, "let every forwarded request through (/v1/forward-auth and ext_authz answer allow) and log the real decision, for rolling scopegate out")
}

// grpcMaxMessage bounds one ext_authz request: method, path and headers,
// and a body only if Envoy is told to send one (with_request_body).
const grpcMaxMessage = 1 << 20

// serveGRPC starts the ext_authz service on c.grpcAddr with serve's TLS
// (and client CA) and authenticator, at most maxConns connections. It
// returns the address it listens on and a stop that drains calls.
func serveGRPC(c gatewayConfig, d extauthz.Decider, authn *auth.Authenticator, tlsCfg *tls.Config, maxConns int, logger *slog.Logger) (string, func(context.Context), error) {
	if !authn.Enabled() && !auth.IsLoopback(c.grpcAddr) {
		return "", nil, fmt.Errorf("refusing to serve --grpc-addr %s without authentication: give --auth-tokens or --tls-client-ca, or listen on loopback", c.grpcAddr)
	}
	ln, err := net.Listen("tcp", c.grpcAddr)
	if err != nil {
		return "", nil, fmt.Errorf("--grpc-addr: %w", err)
	}
	opts := []grpc.ServerOption{
		grpc.MaxRecvMsgSize(grpcMaxMessage),
		grpc.MaxConcurrentStreams(256),
		grpc.ConnectionTimeout(10 * time.Second),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionIdle: 5 * time.Minute}),
	}
	if tlsCfg != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(tlsCfg)))
	}
	g := grpc.NewServer(opts...)
	extauthz.New(d, authn).Register(g)
	// Envoy keeps a few long-lived connections; past the bound a new one
	// waits for a slot rather than exhausting descriptors.
	go func() { _ = g.Serve(netutil.LimitListener(ln, maxConns)) }()
	logger.Info("ext_authz gRPC listening", "addr", ln.Addr().String(), "tls", tlsCfg != nil, "dry_run", c.dryRun)
	stop := func(ctx context.Context) {
		done := make(chan struct{})
		go func() { g.GracefulStop(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			g.Stop()
		}
	}
	return ln.Addr().String(), stop, nil
}
