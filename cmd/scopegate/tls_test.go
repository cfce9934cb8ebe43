package main

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scopegate/scopegate/internal/testpki"
)

// mtlsArgs are serve's flags for HTTPS with a certificate from ca and
// client certificates from ca, the files written into dir.
func mtlsArgs(t *testing.T, dir string, ca *testpki.CA) []string {
	t.Helper()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	srvCert, srvKey := ca.Issue(t, "scopegate", true)
	return []string{"--tls-cert", write("srv.pem", srvCert), "--tls-key", write("srv.key", srvKey), "--tls-client-ca", write("ca.pem", ca.PEM)}
}

// TestServeMTLS: serve with --tls-cert/--tls-key/--tls-client-ca and no
// token files demands a client certificate from the CA for /v1/* and
// /metrics, over HTTPS, lets probes in without one, and records the
// certificate's subject as the caller.
func TestServeMTLS(t *testing.T) {
	dir := t.TempDir()
	ca := testpki.NewCA(t)
	srv := startServe(t, dir, mtlsArgs(t, dir, ca)...)
	url := strings.Replace(srv.url, "http://", "https://", 1) + "/v1/decide"
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca.PEM)
	post := func(certs []tls.Certificate) (int, error) {
		client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: certs}}}
		resp, err := client.Post(url, "application/json", strings.NewReader(`{"granted_scopes":["user:read"],"action":"user:read"}`))
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	if status, err := post(nil); err != nil || status != http.StatusUnauthorized {
		t.Errorf("a client without a certificate: %d %v, want 401", status, err)
	}
	// Probes connect without a certificate, over the same TLS port.
	probe := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	base := strings.TrimSuffix(url, "/v1/decide")
	for _, p := range []string{"/health", "/ready"} {
		resp, err := probe.Get(base + p)
		if err != nil {
			t.Fatalf("%s without a client certificate: %v", p, err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("%s without a client certificate: %d", p, resp.StatusCode)
		}
	}
	resp, err := probe.Get(base + "/metrics")
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("/metrics without a client certificate: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	c, k := ca.Issue(t, "billing-service", false)
	pair, err := tls.X509KeyPair(c, k)
	if err != nil {
		t.Fatal(err)
	}
	if status, err := post([]tls.Certificate{pair}); err != nil || status != 200 {
		t.Fatalf("client certificate: %d %v", status, err)
	}
	// Plain HTTP on the TLS port is refused, not answered.
	if resp, err := http.Post(srv.url+"/v1/decide", "application/json", strings.NewReader(`{}`)); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Error("plain HTTP answered 200 on the TLS port")
		}
	}
	raw, _ := os.ReadFile(filepath.Join(dir, "decisions.log"))
	if !strings.Contains(string(raw), `"caller":"mtls:billing-service"`) {
		t.Errorf("caller not recorded: %s", raw)
	}
}
