package bundle

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	opabundle "github.com/open-policy-agent/opa/v1/bundle"

	"github.com/scopegate/scopegate/internal/source"
)

// Stages of loading a bundle, as reported in LoadError.Stage, on /ready and
// in the scopegate_bundle_load_failures_total metric.
const (
	StageFetch    = "fetch"    // the file or URL could not be read
	StageRead     = "read"     // not a bundle: corrupt archive, bad JSON, Rego syntax
	StageVerify   = "verify"   // signature missing, wrong or not matching the files
	StageValidate = "validate" // a bundle, but not a scopegate one (roots, catalog data)
	StageCompile  = "compile"  // the policy does not compile, or its decision is broken
	StageTest     = "test"     // the bundle's own Rego tests fail
)

// LoadError says at which stage a bundle was refused.
type LoadError struct {
	Stage string
	Err   error
}

func (e *LoadError) Error() string { return e.Stage + ": " + e.Err.Error() }

func (e *LoadError) Unwrap() error { return e.Err }

func stageErr(stage string, err error) error {
	var le *LoadError
	if errors.As(err, &le) {
		return err
	}
	return &LoadError{Stage: stage, Err: err}
}

// StageOf returns err's stage, or "" when it has none.
func StageOf(err error) string {
	var le *LoadError
	if errors.As(err, &le) {
		return le.Stage
	}
	return ""
}

// DefaultFileSizeLimit bounds a bundle: the archive, and the total size of
// its files after decompression.
const DefaultFileSizeLimit = 64 << 20

// LoadOptions configure reading a bundle.
type LoadOptions struct {
	// Verification checks .signatures.json; nil means signatures are not
	// checked (as `opa eval -b` without --verification-key).
	Verification *opabundle.VerificationConfig
	// SizeLimit bounds the archive and the total size of the bundle's
	// files after decompression; zero means DefaultFileSizeLimit.
	SizeLimit int64
}

func (o LoadOptions) sizeLimit() int64 {
	if o.SizeLimit > 0 {
		return o.SizeLimit
	}
	return DefaultFileSizeLimit
}

// LoadPath reads a bundle directory or a .tar.gz file.
func LoadPath(path string, opts LoadOptions) (*source.Source, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, stageErr(StageFetch, err)
	}
	if fi.IsDir() {
		return ReadDir(path, opts)
	}
	if fi.Size() > opts.sizeLimit() {
		return nil, stageErr(StageFetch, fmt.Errorf("%s is %d bytes, over the %d byte limit", path, fi.Size(), opts.sizeLimit()))
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, stageErr(StageFetch, err)
	}
	return ReadTarGz(raw, opts)
}

// ReadDir reads a bundle directory.
func ReadDir(dir string, opts LoadOptions) (*source.Source, error) {
	if err := precheck(scanDir(dir), opts); err != nil {
		return nil, err
	}
	return read(opabundle.NewDirectoryLoader(dir).WithSizeLimitBytes(opts.sizeLimit()), opts)
}

// ReadTarGz reads a bundle archive held in memory.
func ReadTarGz(raw []byte, opts LoadOptions) (*source.Source, error) {
	if err := precheck(scanTarGz(raw), opts); err != nil {
		return nil, err
	}
	return read(opabundle.NewTarballLoaderWithBaseURL(bytes.NewReader(raw), "").WithSizeLimitBytes(opts.sizeLimit()), opts)
}

// read has OPA read (and, with a key, verify) a bundle that passed precheck:
// its signature is good, so a verification error now is a file that does
// not match it, anything else a file that does not parse.
func read(loader opabundle.DirectoryLoader, opts LoadOptions) (*source.Source, error) {
	b, err := opabundle.NewCustomReader(loader).
		WithRegoVersion(ast.RegoV1).
		WithLazyLoadingMode(false).
		WithSizeLimitBytes(opts.sizeLimit() + 1).
		WithBundleVerificationConfig(opts.Verification).
		WithSkipBundleVerification(opts.Verification == nil).
		Read()
	if err != nil {
		stage := StageRead
		if opts.Verification != nil && isFileVerifyError(err) {
			stage = StageVerify
		}
		return nil, stageErr(stage, err)
	}
	return FromBundle(&b)
}

// FromBundle turns an OPA bundle into the source the engine evaluates. It
// refuses what is not a complete scopegate bundle: delta bundles, wasm,
// roots that do not cover scopegate, no data.scopegate.catalog of the
// generated shape, no scopegate.authz policy. Modules named *_test.rego
// become Tests. The revision is the manifest's, or a content hash when the
// manifest has none.
func FromBundle(b *opabundle.Bundle) (*source.Source, error) {
	fail := func(format string, args ...any) (*source.Source, error) {
		return nil, stageErr(StageValidate, fmt.Errorf(format, args...))
	}
	if b.Type() != opabundle.SnapshotBundleType {
		return fail("delta bundles are not supported")
	}
	if len(b.WasmModules) > 0 || len(b.Wasm) > 0 || len(b.PlanModules) > 0 {
		return fail("wasm and plan modules are not supported")
	}
	b.Manifest.Init()
	roots := *b.Manifest.Roots
	for _, need := range []string{Root + "/authz", Root + "/catalog"} {
		if !opabundle.RootPathsContain(roots, need) {
			return fail("manifest roots %q do not cover %s", roots, need)
		}
	}
	if err := ValidateCatalog(b.Data); err != nil {
		return nil, stageErr(StageValidate, err)
	}

	src := &source.Source{Modules: map[string]string{}, Tests: map[string]string{}, Data: b.Data, Revision: b.Manifest.Revision}
	authz := false
	for _, m := range b.Modules {
		name := m.Path
		if strings.HasSuffix(name, "_test.rego") {
			src.Tests[name] = string(m.Raw)
			continue
		}
		src.Modules[name] = string(m.Raw)
		if m.Parsed != nil && m.Parsed.Package.Path.String() == "data."+Root+".authz" {
			authz = true
		}
	}
	if !authz {
		return fail("no policy module has package %s.authz", Root)
	}
	if src.Revision == "" {
		rev, err := contentHash(b)
		if err != nil {
			return nil, stageErr(StageValidate, err)
		}
		src.Revision = rev
	}
	return src, nil
}

// contentHash identifies a bundle that carries no revision.
func contentHash(b *opabundle.Bundle) (string, error) {
	h := sha256.New()
	data, err := json.Marshal(b.Data) // map keys come out sorted
	if err != nil {
		return "", fmt.Errorf("hash bundle data: %w", err)
	}
	h.Write(data)
	mods := append([]opabundle.ModuleFile(nil), b.Modules...)
	sort.Slice(mods, func(i, j int) bool { return mods[i].Path < mods[j].Path })
	for _, m := range mods {
		fmt.Fprintf(h, "\x00%s\x00", m.Path)
		h.Write(m.Raw)
	}
	return "sha256-" + hex.EncodeToString(h.Sum(nil))[:16], nil
}

// ValidateCatalog checks that data holds data.scopegate.catalog with the
// shape `scopegate gen` writes, so a bundle whose catalog is missing or
// hand-broken is refused before it is compiled.
func ValidateCatalog(data map[string]any) error {
	sg, ok := data[Root].(map[string]any)
	if !ok {
		return errors.New("bundle has no data.scopegate (it needs the catalog data.json that `scopegate build` writes)")
	}
	cat, ok := sg["catalog"].(map[string]any)
	if !ok {
		return errors.New("bundle has no data.scopegate.catalog (it needs the catalog data.json that `scopegate build` writes)")
	}
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if !isNumber(cat["version"]) {
		bad("catalog.version is not a number")
	}
	def, ok := cat["default_scope"].(string)
	if !ok || def == "" {
		bad("catalog.default_scope is not a scope name")
	}
	scopes, ok := cat["scopes"].(map[string]any)
	if !ok || len(scopes) == 0 {
		bad("catalog.scopes is not a non-empty object")
		return catalogError(problems)
	}
	if def != "" {
		if _, ok := scopes[def]; !ok {
			bad("catalog.default_scope %q is not in catalog.scopes", def)
		}
	}
	names := make([]string, 0, len(scopes))
	for n := range scopes {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		s, ok := scopes[name].(map[string]any)
		if !ok {
			bad("scope %q is not an object", name)
			continue
		}
		if _, ok := s["description"].(string); !ok {
			bad("scope %q: description is not a string", name)
		}
		if _, ok := s["resource"].(string); !ok {
			bad("scope %q: resource is not a string", name)
		}
		if _, ok := s["sensitive"].(bool); !ok {
			bad("scope %q: sensitive is not a boolean", name)
		}
		if !isNumber(s["order"]) {
			bad("scope %q: order is not a number", name)
		}
		for _, field := range []string{"includes", "implies", "satisfied_by"} {
			list, ok := stringList(s[field])
			if !ok {
				bad("scope %q: %s is not a list of scope names", name, field)
				continue
			}
			self := false
			for _, other := range list {
				if _, ok := scopes[other]; !ok {
					bad("scope %q: %s names unknown scope %q", name, field, other)
				}
				self = self || other == name
			}
			if field != "includes" && !self {
				bad("scope %q: %s does not contain the scope itself", name, field)
			}
		}
	}
	return catalogError(problems)
}

func catalogError(problems []string) error {
	if len(problems) == 0 {
		return nil
	}
	const show = 5
	msg := strings.Join(problems[:min(show, len(problems))], "; ")
	if len(problems) > show {
		msg += fmt.Sprintf("; and %d more", len(problems)-show)
	}
	return fmt.Errorf("invalid data.scopegate.catalog: %s", msg)
}

func isNumber(v any) bool {
	switch v.(type) {
	case json.Number, float64, int, int64:
		return true
	}
	return false
}

func stringList(v any) ([]string, bool) {
	arr, ok := v.([]any)
	if !ok {
		return nil, false
	}
	out := make([]string, len(arr))
	for i, x := range arr {
		s, ok := x.(string)
		if !ok {
			return nil, false
		}
		out[i] = s
	}
	return out, true
}

// readLimited reads all of r, failing once it exceeds limit bytes.
func readLimited(r io.Reader, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("bundle is over the %d byte limit", limit)
	}
	return b, nil
}
