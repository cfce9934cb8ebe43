package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/spf13/pflag"
	"golang.org/x/net/netutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"

	"github.com/scopegate/scopegate/internal/auth"
	"github.com/scopegate/scopegate/internal/extauthz"
)

// gatewayConfig: the gateway adapters' settings (the HTTP forward-auth
// endpoint is always on; Envoy's gRPC ext_authz only with --grpc-addr).
type gatewayConfig struct {
	grpcAddr       string
	dryRun         bool
	grpcMaxMessage byteSize
	grpcMaxStreams int
}

func (c *gatewayConfig) register(f *pflag.FlagSet) {
	f.StringVar(&c.grpcAddr, "grpc-addr", "", "serve Envoy's ext_authz v3 gRPC service (envoy.service.auth.v3.Authorization) on this address, e.g. 127.0.0.1:9191 (empty: off)")
	c.grpcMaxMessage = defaultGRPCMaxMessage
	f.Var(&c.grpcMaxMessage, "grpc-max-message-bytes", "largest ext_authz request taken, e.g. 1MiB (method, path, headers; a body only if Envoy sends one)")
	f.IntVar(&c.grpcMaxStreams, "grpc-max-streams", defaultGRPCMaxStreams, "most ext_authz calls at once on one connection; more wait for a slot")
	f.BoolVar(&c.dryRun, "gateway-dry-run", false, "let every forwarded request through (/v1/forward-auth and ext_authz answer allow) and log the real decision, for rolling scopegate out")
}

// The ext_authz listener's bounds: one request (method, path and headers,
// and a body only if Envoy is told to send one, with_request_body), and
// calls at once per connection.
const (
	defaultGRPCMaxMessage = 1 << 20
	defaultGRPCMaxStreams = 256
)

// serveGRPC starts the ext_authz service on c.grpcAddr with serve's TLS
// (and client CA) and authenticator, at most maxConns connections. It
// returns the address it listens on and a stop that drains calls.
//
// It also serves gRPC health checking (grpc.health.v1, for Envoy's
// grpc_health_check and Kubernetes' grpc probes), open as /ready is:
// SERVING once ready says a policy is loaded.
func serveGRPC(c gatewayConfig, d extauthz.Decider, ready func() bool, authn *auth.Authenticator, tlsCfg *tls.Config, maxConns int, logger *slog.Logger) (string, func(context.Context), error) {
	if !authn.Enabled() && !auth.IsLoopback(c.grpcAddr) {
		return "", nil, fmt.Errorf("refusing to serve --grpc-addr %s without authentication: give --auth-tokens or --tls-client-ca, or listen on loopback", c.grpcAddr)
	}
	if c.grpcMaxMessage < 1<<10 || c.grpcMaxStreams < 1 {
		return "", nil, fmt.Errorf("--grpc-max-message-bytes must be at least 1KiB and --grpc-max-streams positive")
	}
	ln, err := net.Listen("tcp", c.grpcAddr)
	if err != nil {
		return "", nil, fmt.Errorf("--grpc-addr: %w", err)
	}
	opts := []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(extauthz.RecoverPanics(logger)),
		grpc.MaxRecvMsgSize(int(c.grpcMaxMessage)),
		grpc.MaxConcurrentStreams(uint32(c.grpcMaxStreams)),
		grpc.ConnectionTimeout(10 * time.Second),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionIdle: 5 * time.Minute}),
	}
	if tlsCfg != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(tlsCfg)))
	}
	g := grpc.NewServer(opts...)
	extauthz.New(d, authn).Register(g)
	hs := health.NewServer()
	healthpb.RegisterHealthServer(g, hs)
	update := func() {
		st := healthpb.HealthCheckResponse_NOT_SERVING
		if ready() {
			st = healthpb.HealthCheckResponse_SERVING
		}
		hs.SetServingStatus("", st)
		hs.SetServingStatus(authv3.Authorization_ServiceDesc.ServiceName, st)
	}
	update()
	done := make(chan struct{})
	go func() {
		// Polled rather than pushed: a policy can be swapped in or refused
		// by the bundle watcher at any time, and a second is soon enough.
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				update()
			}
		}
	}()
	// Envoy keeps a few long-lived connections; past the bound a new one
	// waits for a slot rather than exhausting descriptors.
	go func() { _ = g.Serve(netutil.LimitListener(ln, maxConns)) }()
	logger.Info("ext_authz gRPC listening", "addr", ln.Addr().String(), "tls", tlsCfg != nil, "dry_run", c.dryRun)
	stop := func(ctx context.Context) {
		close(done)
		hs.Shutdown() // NOT_SERVING while the calls in flight drain
		stopped := make(chan struct{})
		go func() { g.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
		case <-ctx.Done():
			g.Stop()
		}
	}
	return ln.Addr().String(), stop, nil
}
