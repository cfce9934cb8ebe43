package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/scopegate/scopegate/internal/catalog"
	"github.com/scopegate/scopegate/internal/gen"
)

func newGenCmd() *cobra.Command {
	var catalogPath, out, policies string
	var check bool
	cmd := &cobra.Command{
		Use:   "gen",
		Short: "Generate the catalog's Rego data (data.scopegate.catalog) from scopes.yaml",
		Long: `gen validates the scope catalog and writes it, with the transitive closure
precomputed, as the data document the policies read. With --check it writes
nothing and fails when the file on disk differs from what it would write.

It also fails (exit 2) when the policies name a scope or an action the catalog
does not define, e.g. after a scope was removed or renamed, naming the policy
file and line: --policies, by default the policies/ directory next to the
catalog (skipped with a note if there is none; --policies - skips it).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				// Beside its own catalog: generating the example catalog
				// never overwrites the main bundle's data.
				out = filepath.Join(filepath.Dir(catalogPath), "bundles", "scopegate", gen.BundleDataFile)
			}
			c, err := catalog.LoadFile(catalogPath)
			if err != nil {
				return &exitError{code: 2, err: fmt.Errorf("invalid catalog:\n%w", err)}
			}
			if err := checkPoliciesAgainstCatalog(cmd, catalogPath, policies); err != nil {
				return err
			}
			data, err := gen.JSON(c)
			if err != nil {
				return err
			}
			if check {
				have, err := os.ReadFile(out)
				if err != nil || !bytes.Equal(have, data) {
					return &exitError{code: 1, err: fmt.Errorf("%s is stale: run `go run ./cmd/scopegate gen` and commit the result", out)}
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s is up to date (%d scopes)\n", out, len(c.Scopes))
				return nil
			}
			if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
				return fmt.Errorf("create output directory: %w", err)
			}
			if err := os.WriteFile(out, data, 0o644); err != nil {
				return fmt.Errorf("write catalog data: %w", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s (%d scopes)\n", out, len(c.Scopes))
			return nil
		},
	}
	cmd.Flags().StringVar(&catalogPath, "catalog", "scopes.yaml", "scope catalog to read")
	cmd.Flags().StringVar(&out, "out", "", "data file to write (default: bundles/scopegate/data.json next to --catalog)")
	cmd.Flags().BoolVar(&check, "check", false, "fail if the output file is stale instead of writing it")
	cmd.Flags().StringVar(&policies, "policies", "", "policies to check against the catalog (default: policies/ next to --catalog; - skips the check)")
	return cmd
}
