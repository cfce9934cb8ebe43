package auth_test

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/scopegate/scopegate/internal/auth"
	"github.com/scopegate/scopegate/internal/testpki"
)

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestTokens(t *testing.T) {
	a, err := auth.New(auth.Options{
		TokenFile:      writeFile(t, "tokens", "# services\nbilling 0123456789abcdef0123\n\nfedcba9876543210fedc\n"),
		AdminTokenFile: writeFile(t, "admin", "ops aaaaaaaaaaaaaaaaaaaaaaaa\n"),
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		header string
		name   string
		role   auth.Role
	}{
		{"Bearer 0123456789abcdef0123", "billing", auth.RoleDecide},
		{"bearer fedcba9876543210fedc", "", auth.RoleDecide},
		{"Bearer aaaaaaaaaaaaaaaaaaaaaaaa", "ops", auth.RoleAdmin},
		{"Bearer 0123456789abcdef012", "", auth.RoleNone},
		{"Basic 0123456789abcdef0123", "", auth.RoleNone},
		{"", "", auth.RoleNone},
	} {
		r := httptest.NewRequest("POST", "/v1/decide", nil)
		if tc.header != "" {
			r.Header.Set("Authorization", tc.header)
		}
		c := a.Authenticate(r)
		if c.Role != tc.role || (tc.name != "" && c.Name != tc.name) {
			t.Errorf("%q: got %+v, want %s %s", tc.header, c, tc.name, tc.role)
		}
	}
}

func TestTokenFileErrors(t *testing.T) {
	for content, want := range map[string]string{
		"short":           "shorter than 16",
		"a b c":           "want",
		"# only comments": "no tokens",
	} {
		_, err := auth.New(auth.Options{TokenFile: writeFile(t, "t", content+"\n")})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", content, err, want)
		}
	}
	if _, err := auth.New(auth.Options{TokenFile: "/nonexistent"}); err == nil {
		t.Error("missing file accepted")
	}
}

func TestAuthOff(t *testing.T) {
	a, err := auth.New(auth.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if a.Enabled() {
		t.Fatal("enabled with nothing configured")
	}
	if c := a.Authenticate(httptest.NewRequest("GET", "/", nil)); c.Role != auth.RoleDecide || c.Method != "none" {
		t.Fatalf("%+v", c)
	}
}

func TestIsLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:8282": true, "[::1]:0": true, "localhost:80": true, "127.9.9.9:1": true,
		"0.0.0.0:8282": false, ":8282": false, "10.0.0.1:80": false, "example.com:80": false, "nonsense": false,
	} {
		if got := auth.IsLoopback(addr); got != want {
			t.Errorf("IsLoopback(%q) = %v", addr, got)
		}
	}
}

func TestMTLS(t *testing.T) {
	p := testpki.NewCA(t)
	srvCert, srvKey := p.Issue(t, "scopegate", true)
	caFile := writeFile(t, "ca.pem", string(p.PEM))
	cfg, err := auth.ServerTLSConfig(auth.TLSOptions{
		CertFile: writeFile(t, "srv.pem", string(srvCert)), KeyFile: writeFile(t, "srv.key", string(srvKey)),
		ClientCAFile: caFile,
	})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MinVersion != tls.VersionTLS12 {
		t.Error("TLS minimum below 1.2")
	}
	a, err := auth.New(auth.Options{ClientCAFile: caFile, AdminSubjects: []string{"ops-console"}})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := a.Authenticate(r)
		w.Write([]byte(c.Role.String() + " " + c.Name))
	}))
	ts.TLS = cfg
	ts.StartTLS()
	defer ts.Close()

	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(p.PEM)
	get := func(certs []tls.Certificate) string {
		client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: certs}}}
		resp, err := client.Get(ts.URL)
		if err != nil {
			return "error: " + err.Error()
		}
		defer resp.Body.Close()
		b := new(strings.Builder)
		_, _ = io.Copy(b, resp.Body)
		return b.String()
	}
	clientPair := func(cn string) []tls.Certificate {
		c, k := p.Issue(t, cn, false)
		pair, err := tls.X509KeyPair(c, k)
		if err != nil {
			t.Fatal(err)
		}
		return []tls.Certificate{pair}
	}
	if got := get(clientPair("billing-service")); got != "decide billing-service" {
		t.Errorf("client cert: %q", got)
	}
	if got := get(clientPair("ops-console")); got != "admin ops-console" {
		t.Errorf("admin cert: %q", got)
	}
	if got := get(nil); got != "none " {
		t.Errorf("no cert: %q", got)
	}
	// Two CNs, the last an admin's: Go's Subject.CommonName reads the last;
	// such a certificate is ambiguous and confers nothing.
	c2, k2 := p.IssueCNs(t, "billing-service", "ops-console")
	pair2, err := tls.X509KeyPair(c2, k2)
	if err != nil {
		t.Fatal(err)
	}
	if got := get([]tls.Certificate{pair2}); got != "none " {
		t.Errorf("certificate with two CNs: %q", got)
	}
	// A certificate from another CA is refused by the TLS layer.
	other := testpki.NewCA(t)
	c, k := other.Issue(t, "intruder", false)
	pair, _ := tls.X509KeyPair(c, k)
	if got := get([]tls.Certificate{pair}); !strings.HasPrefix(got, "error") {
		t.Errorf("foreign cert: %q", got)
	}
}
