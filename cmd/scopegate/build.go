package main

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/scopegate/scopegate/internal/bundle"
	"github.com/scopegate/scopegate/internal/catalog"
)

func newBuildCmd() *cobra.Command {
	var (
		opts         bundle.BuildOptions
		outDir, name string
		check        bool
		sign         bundle.SigningOptions
	)
	cmd := &cobra.Command{
		Use:   "build",
		Short: "Build the OPA bundle (directory and .tar.gz) from scopes.yaml and policies/",
		Long: `build writes the policies, the generated catalog data and a .manifest
(revision: a content hash unless --revision is given; roots: ["scopegate"]) as an
OPA bundle: <out-dir>/<name>/ and <out-dir>/<name>.tar.gz. The real opa CLI
loads both (opa eval -b, opa test -b, opa run -b).

--signing-key signs it as opa build --signing-key does (.signatures.json, JWT).
With --check it writes nothing and fails when the bundle on disk differs from
what it would write (an existing .signatures.json is then left unchecked).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// Output goes beside its own catalog, so building the example
			// catalog never overwrites the main bundle.
			opts.PoliciesDir = policiesFor(opts.CatalogPath, opts.PoliciesDir)
			if outDir == "" {
				outDir = filepath.Join(filepath.Dir(opts.CatalogPath), "bundles")
			}
			if _, err := catalog.LoadFile(opts.CatalogPath); err != nil {
				return &exitError{code: 2, err: fmt.Errorf("invalid catalog:\n%w", err)}
			}
			// A scope the policies use but the catalog lost fails here (policycheck.go).
			if err := checkPoliciesAgainstCatalog(cmd, opts.CatalogPath, opts.PoliciesDir); err != nil {
				return err
			}
			if sign.KeyFile != "" {
				opts.Signing = &sign
			}
			art, err := bundle.Build(opts)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if check {
				diffs, err := art.Check(outDir, name)
				if err != nil {
					return err
				}
				if len(diffs) > 0 {
					return &exitError{code: 1, err: fmt.Errorf("the bundle under %s is stale: run `go run ./cmd/scopegate build` and commit the result\n  %s",
						outDir, strings.Join(diffs, "\n  "))}
				}
				fmt.Fprintf(out, "%s and %s are up to date (revision %s)\n", bundle.DirPath(outDir, name), bundle.TarPath(outDir, name), art.Revision)
				return nil
			}
			removed, err := art.Write(outDir, name)
			if err != nil {
				return err
			}
			for _, r := range removed {
				fmt.Fprintf(out, "removed stale %s\n", r)
			}
			signed := "unsigned"
			if opts.Signing != nil {
				signed = "signed " + signAlg(sign.Algorithm)
			}
			fmt.Fprintf(out, "wrote %s/ and %s (revision %s, %d policy files, %d scopes, %s)\n",
				bundle.DirPath(outDir, name), bundle.TarPath(outDir, name), art.Revision, len(art.Bundle.Modules), art.Scopes, signed)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.CatalogPath, "catalog", "scopes.yaml", "scope catalog to read")
	f.StringVar(&opts.PoliciesDir, "policies", "", policiesHelp+", tests included")
	f.StringVar(&outDir, "out-dir", "", "where to write <name>/ and <name>.tar.gz (default: bundles/ next to --catalog)")
	f.StringVar(&name, "name", bundle.DefaultName, "bundle name")
	f.StringVar(&opts.Revision, "revision", "", "manifest revision (default: content hash, as serve reports for files)")
	f.BoolVar(&check, "check", false, "fail if the bundle on disk is stale instead of writing it")
	f.StringVar(&sign.KeyFile, "signing-key", "", "sign with this key file: PEM private key, or HMAC secret for HS*")
	f.StringVar(&sign.Algorithm, "signing-alg", "RS256", "signing algorithm: RS256, ES256, HS256, ...")
	f.StringVar(&sign.KeyID, "signing-key-id", bundle.DefaultKeyID, "key id written into the signature")
	return cmd
}

func signAlg(a string) string {
	if a == "" {
		return "RS256"
	}
	return a
}
