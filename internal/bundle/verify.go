package bundle

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"strings"

	opabundle "github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/keys"
)

// VerificationOptions name the key that bundles must be signed with, like
// `opa run --verification-key --verification-key-id --signing-alg`.
type VerificationOptions struct {
	// KeyFile holds a PEM public key (or certificate) for RS*/ES*/PS*, or
	// the shared secret for HS*, used as is (as OPA does).
	KeyFile string
	// Algorithm defaults to RS256.
	Algorithm string
	// KeyID defaults to "default"; it overrides the JWT's kid, as in OPA.
	KeyID string
	// Scope, when set, must match the signature's scope claim.
	Scope string
}

// NewVerificationConfig reads the key and returns OPA's verification
// config. A bundle read with it must carry a .signatures.json signed by
// that key that covers every file in the bundle.
func NewVerificationConfig(o VerificationOptions) (*opabundle.VerificationConfig, error) {
	alg := o.Algorithm
	if alg == "" {
		alg = "RS256"
	}
	if !keys.IsSupportedAlgorithm(alg) {
		return nil, fmt.Errorf("unsupported verification algorithm %q", alg)
	}
	raw, err := os.ReadFile(o.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("verification key: %w", err)
	}
	if len(raw) == 0 {
		return nil, fmt.Errorf("verification key %s is empty", o.KeyFile)
	}
	if !strings.HasPrefix(alg, "HS") {
		if err := checkPublicKey(raw); err != nil {
			return nil, fmt.Errorf("verification key %s: %w", o.KeyFile, err)
		}
	}
	keyID := o.KeyID
	if keyID == "" {
		keyID = DefaultKeyID
	}
	kc := &keys.Config{Key: string(raw), Algorithm: alg, Scope: o.Scope}
	return opabundle.NewVerificationConfig(map[string]*keys.Config{keyID: kc}, keyID, o.Scope, nil), nil
}

// checkPublicKey catches a wrong key file at start-up rather than on every
// bundle: it must be a PEM block OPA can verify with.
func checkPublicKey(raw []byte) error {
	block, _ := pem.Decode(raw)
	if block == nil {
		return fmt.Errorf("not a PEM key")
	}
	var err error
	switch block.Type {
	case "PUBLIC KEY":
		_, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		_, err = x509.ParsePKCS1PublicKey(block.Bytes)
	case "CERTIFICATE":
		_, err = x509.ParseCertificate(block.Bytes)
	case "RSA PRIVATE KEY", "PRIVATE KEY", "EC PRIVATE KEY":
		return fmt.Errorf("is a private key (%s); give the public key", block.Type)
	default:
		return fmt.Errorf("unsupported PEM block %q", block.Type)
	}
	return err
}
