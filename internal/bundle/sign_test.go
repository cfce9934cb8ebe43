package bundle_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/scopegate/scopegate/internal/bundle"
)

func verifyWith(t *testing.T, kp keyPair, alg string) bundle.LoadOptions {
	t.Helper()
	vc, err := bundle.NewVerificationConfig(bundle.VerificationOptions{KeyFile: kp.public, Algorithm: alg})
	if err != nil {
		t.Fatal(err)
	}
	return bundle.LoadOptions{Verification: vc}
}

func TestSignAndVerify(t *testing.T) {
	unsigned := build(t, repoPolicies, nil)
	unsignedDir, unsignedTar := writeBundle(t, unsigned)
	for _, alg := range []string{"RS256", "ES256", "HS256"} {
		t.Run(alg, func(t *testing.T) {
			kp := newKeys(t, alg)
			art := build(t, repoPolicies, &bundle.SigningOptions{KeyFile: kp.private, Algorithm: alg})
			if _, ok := art.Files[".signatures.json"]; !ok {
				t.Fatal("no .signatures.json")
			}
			if art.Revision != unsigned.Revision {
				t.Errorf("signing changed the revision")
			}
			dir, tgz := writeBundle(t, art)
			opts := verifyWith(t, kp, alg)

			for _, p := range []string{dir, tgz} {
				src, err := bundle.LoadPath(p, opts)
				if err != nil {
					t.Fatalf("right key refused %s: %v", p, err)
				}
				if src.Revision != art.Revision {
					t.Errorf("revision %s", src.Revision)
				}
				// Without a key configured a signed bundle still loads (as
				// with `opa eval -b`).
				if _, err := bundle.LoadPath(p, bundle.LoadOptions{}); err != nil {
					t.Errorf("no key: %v", err)
				}
			}

			other := newKeys(t, alg)
			refused := func(name, path string, opts bundle.LoadOptions, want string) {
				t.Helper()
				_, err := bundle.LoadPath(path, opts)
				if err == nil {
					t.Fatalf("%s: accepted", name)
				}
				t.Logf("%s: %v", name, err)
				if bundle.StageOf(err) != bundle.StageVerify || !strings.Contains(err.Error(), want) {
					t.Errorf("%s: got %q (stage %s), want stage verify and %q", name, err, bundle.StageOf(err), want)
				}
			}
			refused("unsigned dir", unsignedDir, opts, "missing .signatures.json")
			refused("unsigned tar", unsignedTar, opts, "missing .signatures.json")
			refused("wrong key dir", dir, verifyWith(t, other, alg), "failed to verify JWT signature")
			refused("wrong key tar", tgz, verifyWith(t, other, alg), "failed to verify JWT signature")

			// Tampering after signing: an edited file, an added file.
			appendTo(t, filepath.Join(dir, "policies", "actions.rego"), "\n# tampered\n")
			refused("edited file", dir, opts, "policies/actions.rego: digest mismatch")
			restore(t, art, dir, "policies/actions.rego")
			if _, err := bundle.LoadPath(dir, opts); err != nil {
				t.Fatalf("restored: %v", err)
			}
			writeFile(t, filepath.Join(dir, "policies", "extra.rego"), []byte("package scopegate.extra\n\nx := 1\n"))
			refused("added file", dir, opts, "not included in bundle signature")

			tampered := retar(t, art.TarGz, func(name string, b []byte) []byte {
				if name == "/policies/actions.rego" {
					return []byte(revisionB("actions.rego", string(b)))
				}
				return b
			})
			writeFile(t, tgz, tampered)
			refused("edited tar", tgz, opts, "digest mismatch")
		})
	}
}

func TestVerificationKeyErrors(t *testing.T) {
	kp := newKeys(t, "RS256")
	for _, tc := range []struct {
		name string
		opts bundle.VerificationOptions
		want string
	}{
		{"missing file", bundle.VerificationOptions{KeyFile: filepath.Join(t.TempDir(), "nope.pem")}, "no such file"},
		{"private key", bundle.VerificationOptions{KeyFile: kp.private}, "private key"},
		{"not PEM", bundle.VerificationOptions{KeyFile: writeTemp(t, "hello")}, "not a PEM key"},
		{"bad alg", bundle.VerificationOptions{KeyFile: kp.public, Algorithm: "none"}, "unsupported"},
	} {
		if _, err := bundle.NewVerificationConfig(tc.opts); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	if _, err := bundle.Build(bundle.BuildOptions{CatalogPath: repoCatalog, PoliciesDir: repoPolicies,
		Signing: &bundle.SigningOptions{KeyFile: filepath.Join(t.TempDir(), "missing.pem")}}); err == nil {
		t.Error("signing with a missing key file worked")
	}
}

func writeTemp(t *testing.T, s string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// retar rewrites a .tar.gz, passing each entry through edit.
func retar(t *testing.T, raw []byte, edit func(name string, b []byte) []byte) []byte {
	t.Helper()
	gz, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	tw := tar.NewWriter(zw)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		b = edit(h.Name, b)
		h.Size = int64(len(b))
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// TestSigningKeyOfTheWrongType: a key that does not fit --signing-alg is
// refused before signing, saying which algorithm fits it.
func TestSigningKeyOfTheWrongType(t *testing.T) {
	rsaKeys, ecKeys, secret := newKeys(t, "RS256"), newKeys(t, "ES256"), newKeys(t, "HS256")
	for _, tc := range []struct {
		key, alg, want string
	}{
		{ecKeys.private, "RS256", "is an EC P-256 private key, which does not fit --signing-alg RS256: use --signing-alg ES256"},
		{ecKeys.private, "ES384", "use --signing-alg ES256"},
		{rsaKeys.private, "ES256", "is an RSA private key, which does not fit --signing-alg ES256: use --signing-alg RS256 (or RS384, RS512, PS256, PS384, PS512)"},
		{rsaKeys.private, "HS256", "use --signing-alg RS256"},
		{secret.private, "RS256", "is a shared secret (no PEM block), which does not fit --signing-alg RS256: use --signing-alg HS256"},
		{rsaKeys.public, "RS256", "is a public key or certificate (sign with the private key"},
	} {
		_, err := bundle.Build(bundle.BuildOptions{CatalogPath: repoCatalog, PoliciesDir: repoPolicies,
			Signing: &bundle.SigningOptions{KeyFile: tc.key, Algorithm: tc.alg}})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s with %s: %v\nwant %q", filepath.Base(tc.key), tc.alg, err, tc.want)
		}
	}
	for _, tc := range []struct{ key, alg string }{
		{rsaKeys.private, "PS256"}, {ecKeys.private, "ES256"}, {secret.private, "HS512"},
	} {
		if _, err := bundle.Build(bundle.BuildOptions{CatalogPath: repoCatalog, PoliciesDir: repoPolicies,
			Signing: &bundle.SigningOptions{KeyFile: tc.key, Algorithm: tc.alg}}); err != nil {
			t.Errorf("%s with %s: %v", filepath.Base(tc.key), tc.alg, err)
		}
	}
}
