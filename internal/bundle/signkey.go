package bundle

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"slices"
	"strings"
)

// keyFits says, before OPA's signer fails with a library error, whether the
// key file fits the algorithm, and if not which --signing-alg would.
func keyFits(file, alg string) error {
	raw, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	kind, fits := keyKind(raw)
	if slices.Contains(fits, alg) {
		return nil
	}
	if len(fits) == 0 {
		return fmt.Errorf("signing key %s is %s, which cannot sign a bundle: give an RSA or EC private key (PEM), or an HMAC secret file with --signing-alg HS256", file, kind)
	}
	return fmt.Errorf("signing key %s is %s, which does not fit --signing-alg %s: use --signing-alg %s%s", file, kind, alg, fits[0], orOthers(fits))
}

func orOthers(fits []string) string {
	if len(fits) == 1 {
		return ""
	}
	return " (or " + strings.Join(fits[1:], ", ") + ")"
}

// keyKind names what a key file holds and the algorithms it signs with.
func keyKind(raw []byte) (kind string, fits []string) {
	block, _ := pem.Decode(raw)
	if block == nil {
		return "a shared secret (no PEM block)", []string{"HS256", "HS384", "HS512"}
	}
	var key any
	var err error
	switch block.Type {
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "PUBLIC KEY", "RSA PUBLIC KEY", "CERTIFICATE":
		return "a public key or certificate (sign with the private key; the public key is for --verification-key)", nil
	default:
		return fmt.Sprintf("a PEM %q block", block.Type), nil
	}
	if err != nil {
		return fmt.Sprintf("a PEM %q block that does not parse (%v)", block.Type, err), nil
	}
	switch k := key.(type) {
	case *rsa.PrivateKey:
		return "an RSA private key", []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
	case *ecdsa.PrivateKey:
		name := k.Curve.Params().Name
		alg := map[string]string{"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}[name]
		if alg == "" {
			return "an EC private key on curve " + name, nil
		}
		return "an EC " + name + " private key", []string{alg}
	case ed25519.PrivateKey:
		return "an Ed25519 private key (OPA's bundle signing has no EdDSA)", nil
	}
	return fmt.Sprintf("a %T", key), nil
}
