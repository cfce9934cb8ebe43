package bundle

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	opabundle "github.com/open-policy-agent/opa/v1/bundle"
)

// signaturesFile is where a signed bundle keeps its signatures.
const signaturesFile = ".signatures.json"

// maxSignaturesBytes bounds .signatures.json: a few JWTs.
const maxSignaturesBytes = 1 << 20

// A scan walks a bundle's files without keeping them: it calls file with
// each one's name (slash-separated, relative to the bundle root) and size,
// and read to fetch the content of the one it asks for.
type scan func(file func(name string, size int64, read func() ([]byte, error)) error) error

// precheck reads what it must before OPA parses any of a bundle: the total
// size of its files (bounded by opts' limit, however well they compress),
// and with a verification key the signature. A forged bundle is refused for
// the price of its .signatures.json: nothing it holds is parsed.
func precheck(walk scan, opts LoadOptions) error {
	limit := opts.sizeLimit()
	var total int64
	var sigs []byte
	found := false
	err := walk(func(name string, size int64, read func() ([]byte, error)) error {
		total += size
		if total > limit {
			return stageErr(StageRead, fmt.Errorf("bundle holds over %d bytes once decompressed (--bundle-max-bytes)", limit))
		}
		if name != signaturesFile || opts.Verification == nil {
			return nil
		}
		if size > maxSignaturesBytes {
			return stageErr(StageVerify, fmt.Errorf("%s is %d bytes: not a signature file", signaturesFile, size))
		}
		b, err := read()
		if err != nil {
			return stageErr(StageRead, err)
		}
		// Verify at once: a forged bundle is refused before the rest of it
		// is even decompressed (OPA's builder writes the signatures first).
		found, sigs = true, b
		return verifySignatures(sigs, opts.Verification)
	})
	if err != nil {
		if StageOf(err) == "" {
			err = stageErr(StageRead, err)
		}
		return err
	}
	if opts.Verification != nil && !found {
		return stageErr(StageVerify, errors.New("bundle missing .signatures.json file"))
	}
	return nil
}

// verifySignatures checks the JWTs of .signatures.json with OPA's verifier.
func verifySignatures(raw []byte, vc *opabundle.VerificationConfig) error {
	var sc opabundle.SignaturesConfig
	if err := json.Unmarshal(raw, &sc); err != nil {
		return stageErr(StageVerify, fmt.Errorf("read %s: %w", signaturesFile, err))
	}
	if _, err := opabundle.VerifyBundleSignature(sc, vc); err != nil {
		return stageErr(StageVerify, err)
	}
	return nil
}

// isFileVerifyError reports whether OPA refused a bundle with a good
// signature because a file does not match it (OPA's errors are untyped).
func isFileVerifyError(err error) bool {
	msg := err.Error()
	for _, s := range []string{"not included in bundle signature", "digest mismatch",
		"no hashing algorithm provided", "specified in bundle signatures but not found"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// scanTarGz walks a .tar.gz held in memory.
func scanTarGz(raw []byte) scan {
	return func(file func(string, int64, func() ([]byte, error)) error) error {
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			return err
		}
		tr := tar.NewReader(zr)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
			if h.Typeflag != tar.TypeReg {
				continue
			}
			name := strings.TrimPrefix(path.Clean("/"+h.Name), "/")
			if err := file(name, h.Size, func() ([]byte, error) { return io.ReadAll(io.LimitReader(tr, h.Size)) }); err != nil {
				return err
			}
		}
	}
}

// scanDir walks a bundle directory.
func scanDir(dir string) scan {
	return func(file func(string, int64, func() ([]byte, error)) error) error {
		return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return err
			}
			fi, err := d.Info()
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(dir, p)
			return file(filepath.ToSlash(rel), fi.Size(), func() ([]byte, error) { return os.ReadFile(p) })
		})
	}
}
