package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/scopegate/scopegate/internal/policycheck"
	"github.com/scopegate/scopegate/internal/source"
)

// policiesBeside is the default policy directory of a catalog: policies/
// next to it, so `gen --catalog examples/marketplace/scopes.yaml` checks
// examples/marketplace/policies, not the repo's.
func policiesBeside(catalogPath string) string {
	return filepath.Join(filepath.Dir(catalogPath), "policies")
}

// policiesFor is the policy directory a command uses: --policies, or by
// default (dir "") the policies/ beside the catalog, so that
// `serve --catalog examples/marketplace/scopes.yaml` serves that catalog's
// own policies.
func policiesFor(catalogPath, dir string) string {
	if dir == "" {
		return policiesBeside(catalogPath)
	}
	return dir
}

// policiesHelp describes a --policies flag whose default is policiesFor's.
const policiesHelp = "directory of Rego policies (default: policies/ next to --catalog)"

// checkPoliciesAgainstCatalog fails when the policies name a scope or an
// action the catalog does not define (a removed or renamed scope), naming
// the policy file and line. dir "" means the policies beside the catalog,
// skipped with a note on stderr when there is no such directory; "-"
// skips the check.
func checkPoliciesAgainstCatalog(cmd *cobra.Command, catalogPath, dir string) error {
	if dir == "-" {
		return nil
	}
	if dir == "" {
		dir = policiesBeside(catalogPath)
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			fmt.Fprintf(cmd.ErrOrStderr(), "note: no %s directory: the policies were not checked against the catalog (use --policies)\n", dir)
			return nil
		}
	}
	src, err := source.FromFiles(catalogPath, dir)
	if err != nil {
		return &exitError{code: 2, err: fmt.Errorf("check policies: %w", err)}
	}
	problems, err := policycheck.Check(cmd.Context(), src)
	if err != nil {
		return &exitError{code: 2, err: fmt.Errorf("check policies in %s: %w", dir, err)}
	}
	if len(problems) > 0 {
		return &exitError{code: 2, err: fmt.Errorf("the policies in %s use scopes or actions the catalog does not define:\n%w", dir, problems)}
	}
	return nil
}
