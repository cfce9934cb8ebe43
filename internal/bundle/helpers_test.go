package bundle_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/scopegate/scopegate/internal/bundle"
)

const (
	repoCatalog  = "../../scopes.yaml"
	repoPolicies = "../../policies"
)

// copyPolicies copies the repo's policies into a temp dir, passing each
// file's text through edit (nil keeps it).
func copyPolicies(t testing.TB, edit func(name, text string) string) string {
	t.Helper()
	dir := t.TempDir()
	files, err := filepath.Glob(filepath.Join(repoPolicies, "*.rego"))
	if err != nil || len(files) == 0 {
		t.Fatalf("list policies: %v %v", files, err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		text := string(b)
		if edit != nil {
			text = edit(filepath.Base(f), text)
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(f)), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// revisionB makes project.list need project:write instead of
// project:read, so a project:read token is allowed by the repo's policy
// (revision A) and denied by this one.
func revisionB(name, text string) string {
	if name != "actions.rego" {
		return text
	}
	const from = `"project.list": {"any_of": ["project:read"]`
	if !strings.Contains(text, from) {
		panic("actions.rego no longer has " + from)
	}
	return strings.Replace(text, from, `"project.list": {"any_of": ["project:write"]`, 1)
}

func build(t testing.TB, policies string, signing *bundle.SigningOptions) *bundle.Artifact {
	t.Helper()
	art, err := bundle.Build(bundle.BuildOptions{CatalogPath: repoCatalog, PoliciesDir: policies, Signing: signing})
	if err != nil {
		t.Fatal(err)
	}
	return art
}

// writeBundle writes art under a fresh temp dir and returns the directory
// bundle's and the tarball's paths.
func writeBundle(t testing.TB, art *bundle.Artifact) (dir, tgz string) {
	t.Helper()
	out := t.TempDir()
	if _, err := art.Write(out, bundle.DefaultName); err != nil {
		t.Fatal(err)
	}
	return bundle.DirPath(out, bundle.DefaultName), bundle.TarPath(out, bundle.DefaultName)
}

// writeFile replaces p atomically, as a deploy would.
func writeFile(t testing.TB, p string, b []byte) {
	t.Helper()
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, p); err != nil {
		t.Fatal(err)
	}
}

type keyPair struct{ private, public string }

// newKeys writes a key pair for alg into a temp dir: PEM for RS256/ES256,
// a shared secret (both "halves" the same file) for HS256.
func newKeys(t testing.TB, alg string) keyPair {
	t.Helper()
	dir := t.TempDir()
	kp := keyPair{private: filepath.Join(dir, "private.pem"), public: filepath.Join(dir, "public.pem")}
	var priv any
	switch alg {
	case "RS256":
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		priv = k
	case "ES256":
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		priv = k
	case "HS256":
		secret := make([]byte, 32)
		if _, err := rand.Read(secret); err != nil {
			t.Fatal(err)
		}
		kp.public = kp.private // a shared secret
		if err := os.WriteFile(kp.private, []byte(hex.EncodeToString(secret)), 0o600); err != nil {
			t.Fatal(err)
		}
		return kp
	default:
		t.Fatalf("no keys for %s", alg)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(kp.private, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	pub, err := x509.MarshalPKIXPublicKey(priv.(crypto.Signer).Public())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(kp.public, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o644); err != nil {
		t.Fatal(err)
	}
	return kp
}
