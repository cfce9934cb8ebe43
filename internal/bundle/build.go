// Package bundle builds, signs, verifies, loads and watches scopegate's OPA
// bundles. It uses OPA's own bundle package for the format, the tarball and
// the signatures, so the real `opa` CLI reads what it writes and the other
// way round.
//
// A bundle holds the policies (policies/*.rego, tests included, so that
// `opa test -b` works), the generated catalog (data.json, with
// data.scopegate.catalog inside) and a .manifest whose roots are
// ["scopegate"] and whose revision is the content hash
// source.FromFiles computes: serving from files and serving the built
// bundle report the same revision.
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
	"slices"
	"sort"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	opabundle "github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/keys"
	"github.com/open-policy-agent/opa/v1/util"

	"github.com/scopegate/scopegate/internal/gen"
	"github.com/scopegate/scopegate/internal/source"
)

// Root is the only manifest root scopegate bundles claim.
const Root = "scopegate"

// DefaultName is the bundle's name: bundles/<name>/ and bundles/<name>.tar.gz.
const DefaultName = "scopegate"

// DefaultKeyID names the key in signatures and verification, as OPA's
// `--verification-key-id` default does.
const DefaultKeyID = "default"

// PolicyDir is where policies go inside a bundle.
const PolicyDir = "policies"

// SigningOptions sign a bundle the way `opa build --signing-key` does.
type SigningOptions struct {
	// Key is a PEM private key file for RS*/ES*/PS*, or a file holding the
	// shared secret for HS*.
	KeyFile string
	// Algorithm defaults to RS256.
	Algorithm string
	// KeyID goes into the JWT (kid and the keyid claim); defaults to "default".
	KeyID string
}

// BuildOptions say what goes into a bundle.
type BuildOptions struct {
	// CatalogPath is scopes.yaml; PoliciesDir holds the .rego files.
	CatalogPath, PoliciesDir string
	// Revision overrides the content hash (e.g. with `git describe`).
	Revision string
	// Signing, when set, adds .signatures.json.
	Signing *SigningOptions
}

// Artifact is a built bundle, in memory.
type Artifact struct {
	// Bundle is OPA's view of it.
	Bundle opabundle.Bundle
	// Files is the directory form: path relative to the bundle root -> bytes.
	Files map[string][]byte
	// TarGz is the .tar.gz form, written by OPA's bundle writer. Unsigned
	// (and RS256/HS256-signed) builds of the same content give the same bytes.
	TarGz []byte
	// Revision is the manifest revision.
	Revision string
	// Scopes counts the catalog's scopes.
	Scopes int
}

// Build reads the catalog and the policies and assembles the bundle.
func Build(opts BuildOptions) (*Artifact, error) {
	src, err := source.FromFiles(opts.CatalogPath, opts.PoliciesDir)
	if err != nil {
		return nil, err
	}
	data, err := gen.JSON(src.Catalog)
	if err != nil {
		return nil, err
	}
	revision := src.Revision
	if opts.Revision != "" {
		revision = opts.Revision
	}

	b := opabundle.Bundle{Manifest: opabundle.Manifest{Revision: revision, Roots: &[]string{Root}}}
	b.Manifest.SetRegoVersion(ast.RegoV1)
	if err := util.UnmarshalJSON(data, &b.Data); err != nil {
		return nil, fmt.Errorf("decode catalog data: %w", err)
	}
	files := map[string][]byte{gen.BundleDataFile: data}

	var names []string
	texts := map[string]string{}
	for _, set := range []map[string]string{src.Modules, src.Tests} {
		for name, text := range set {
			base := filepath.Base(name)
			if _, dup := texts[base]; dup {
				return nil, fmt.Errorf("two policy files named %s", base)
			}
			texts[base] = text
			names = append(names, base)
		}
	}
	sort.Strings(names)
	for _, base := range names {
		p := path.Join(PolicyDir, base)
		raw := []byte(texts[base])
		parsed, err := ast.ParseModuleWithOpts("/"+p, texts[base], ast.ParserOptions{RegoVersion: ast.RegoV1})
		if err != nil {
			return nil, fmt.Errorf("parse %s: %w", p, err)
		}
		b.Modules = append(b.Modules, opabundle.ModuleFile{URL: "/" + p, Path: "/" + p, RelativePath: "/" + p, Raw: raw, Parsed: parsed})
		files[p] = raw
		if root, ok := extraRoot(parsed); ok && !slices.Contains(*b.Manifest.Roots, root) {
			*b.Manifest.Roots = append(*b.Manifest.Roots, root)
		}
	}

	if opts.Signing != nil {
		sc, keyID, err := signingConfig(*opts.Signing)
		if err != nil {
			return nil, err
		}
		if err := b.GenerateSignature(sc, keyID, true); err != nil {
			return nil, fmt.Errorf("sign bundle: %w", err)
		}
		sig, err := json.MarshalIndent(b.Signatures, "", " ")
		if err != nil {
			return nil, fmt.Errorf("encode signatures: %w", err)
		}
		files[".signatures.json"] = sig
	}

	var tgz bytes.Buffer
	if err := opabundle.NewWriter(&tgz).UseModulePath(true).DisableFormat(true).Write(b); err != nil {
		return nil, fmt.Errorf("write bundle tarball: %w", err)
	}
	// The directory's .manifest is the tarball's, byte for byte.
	entries, err := tarEntries(tgz.Bytes())
	if err != nil {
		return nil, err
	}
	manifest, ok := entries[".manifest"]
	if !ok {
		return nil, errors.New("bundle writer wrote no .manifest")
	}
	files[".manifest"] = manifest

	return &Artifact{Bundle: b, Files: files, TarGz: tgz.Bytes(), Revision: revision, Scopes: len(src.Catalog.Scopes)}, nil
}

func signingConfig(o SigningOptions) (*opabundle.SigningConfig, string, error) {
	alg := o.Algorithm
	if alg == "" {
		alg = "RS256"
	}
	if !keys.IsSupportedAlgorithm(alg) {
		return nil, "", fmt.Errorf("unsupported signing algorithm %q", alg)
	}
	if _, err := os.Stat(o.KeyFile); err != nil {
		// OPA would take a missing file name for the key itself; refuse instead.
		return nil, "", fmt.Errorf("signing key: %w", err)
	}
	if err := keyFits(o.KeyFile, alg); err != nil {
		return nil, "", err
	}
	keyID := o.KeyID
	if keyID == "" {
		keyID = DefaultKeyID
	}
	sc := opabundle.NewSigningConfig(o.KeyFile, alg, "")
	if _, err := sc.GetPrivateKey(); err != nil {
		return nil, "", fmt.Errorf("signing key %s: %w", o.KeyFile, err)
	}
	return sc, keyID, nil
}

// DirPath and TarPath are where Write puts the two forms under outDir.
func DirPath(outDir, name string) string { return filepath.Join(outDir, name) }

// TarPath is outDir/<name>.tar.gz.
func TarPath(outDir, name string) string { return filepath.Join(outDir, name+".tar.gz") }

// Write puts the bundle under outDir as <name>/ and <name>.tar.gz. Files
// in <name>/ that are not part of the bundle are removed, since OPA would
// load them too. It returns what it removed.
func (a *Artifact) Write(outDir, name string) (removed []string, err error) {
	dir := DirPath(outDir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create bundle directory: %w", err)
	}
	for rel, content := range a.Files {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return nil, fmt.Errorf("create bundle directory: %w", err)
		}
		if err := writeFileAtomic(p, content); err != nil {
			return nil, err
		}
	}
	have, err := readTree(dir)
	if err != nil {
		return nil, err
	}
	for rel := range have {
		if _, ok := a.Files[rel]; !ok {
			if err := os.Remove(filepath.Join(dir, filepath.FromSlash(rel))); err != nil {
				return removed, fmt.Errorf("remove stale bundle file: %w", err)
			}
			removed = append(removed, rel)
		}
	}
	sort.Strings(removed)
	if err := writeFileAtomic(TarPath(outDir, name), a.TarGz); err != nil {
		return removed, err
	}
	return removed, nil
}

// Check compares the bundle on disk under outDir with a. The directory must
// hold exactly a's files, byte for byte; the tarball must hold the same
// entries with the same content (gzip framing is not compared). A
// .signatures.json is compared only when a is signed: unsigned builds
// ignore it, so a release may sign the committed bundle. It returns one
// line per difference.
func (a *Artifact) Check(outDir, name string) ([]string, error) {
	var diffs []string
	dir := DirPath(outDir, name)
	have, err := readTree(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return []string{dir + " is missing"}, nil
		}
		return nil, err
	}
	_, signed := a.Files[".signatures.json"]
	diffs = append(diffs, compareFiles(dir, a.Files, have, signed)...)

	tp := TarPath(outDir, name)
	raw, err := os.ReadFile(tp)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		diffs = append(diffs, tp+" is missing")
	case err != nil:
		return nil, err
	default:
		got, err := tarEntries(raw)
		if err != nil {
			diffs = append(diffs, fmt.Sprintf("%s: %v", tp, err))
			break
		}
		want, err := tarEntries(a.TarGz)
		if err != nil {
			return nil, err
		}
		diffs = append(diffs, compareFiles(tp, want, got, signed)...)
	}
	return diffs, nil
}

func compareFiles(where string, want, have map[string][]byte, compareSignatures bool) []string {
	var diffs []string
	for _, rel := range sortedKeys(want) {
		if rel == ".signatures.json" && !compareSignatures {
			continue
		}
		got, ok := have[rel]
		switch {
		case !ok:
			diffs = append(diffs, fmt.Sprintf("%s: %s is missing", where, rel))
		case !bytes.Equal(got, want[rel]):
			diffs = append(diffs, fmt.Sprintf("%s: %s differs", where, rel))
		}
	}
	for _, rel := range sortedKeys(have) {
		if rel == ".signatures.json" && !compareSignatures {
			continue
		}
		if _, ok := want[rel]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s: %s should not be there", where, rel))
		}
	}
	return diffs
}

func sortedKeys(m map[string][]byte) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// readTree reads every regular file under dir, keyed by slash path.
func readTree(dir string) (map[string][]byte, error) {
	out := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		out[filepath.ToSlash(rel)] = b
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// tarEntries decompresses a .tar.gz into name -> content (leading "/" cut).
func tarEntries(raw []byte) (map[string][]byte, error) {
	gz, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("not a gzip file: %w", err)
	}
	tr := tar.NewReader(gz)
	out := map[string][]byte{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read tar: %w", err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		b, err := io.ReadAll(io.LimitReader(tr, opabundle.DefaultSizeLimitBytes))
		if err != nil {
			return nil, fmt.Errorf("read tar entry %s: %w", h.Name, err)
		}
		out[strings.TrimPrefix(h.Name, "/")] = b
	}
}

func writeFileAtomic(p string, content []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(p), "."+filepath.Base(p)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(content); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", p, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", p, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	if err := os.Rename(tmp.Name(), p); err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	return nil
}

// extraRoot is the manifest root a module outside package scopegate needs,
// such as "system/log" for decision-log masking (data.system.log.mask):
// OPA refuses a bundle whose modules lie outside its roots.
func extraRoot(m *ast.Module) (string, bool) {
	if m.Package.Path.HasPrefix(ast.MustParseRef("data." + Root)) {
		return "", false
	}
	parts := make([]string, 0, len(m.Package.Path)-1)
	for _, t := range m.Package.Path[1:] {
		s, ok := t.Value.(ast.String)
		if !ok {
			return "", false
		}
		parts = append(parts, string(s))
	}
	return strings.Join(parts, "/"), true
}
