// Command scopegate is an OAuth-scope decision point built on OPA.
//
//	scopegate serve   answer POST /v1/decide
//	scopegate gen     generate the catalog data from scopes.yaml
//	scopegate build   build (and sign) the OPA bundle under bundles/
//	scopegate test    run the Rego unit tests, with coverage
//	scopegate decide  decide one question locally (exit 0 allow, 3 deny)
//	scopegate scopes  list the catalog, show a scope, normalise a scope list
//	scopegate audit   verify, query and summarize the decision log
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// exitError carries an exit status without printing usage.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := newRootCmd().ExecuteContext(ctx)
	if err == nil {
		return
	}
	fmt.Fprintln(os.Stderr, "scopegate:", err)
	var ee *exitError
	if errors.As(err, &ee) {
		os.Exit(ee.code)
	}
	os.Exit(1)
}

func newRootCmd() *cobra.Command {
	var configPath string
	root := &cobra.Command{
		Use:           "scopegate",
		Short:         "OAuth-scope policy engine built on OPA",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version,
		// Flags win, then SCOPEGATE_* environment variables, then the
		// --config file, then defaults.
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if err := bindEnv(cmd); err != nil {
				return usageError(err)
			}
			if configPath != "" {
				if err := applyConfig(cmd, configPath); err != nil {
					return usageError(err)
				}
			}
			return nil
		},
	}
	root.PersistentFlags().StringVar(&configPath, "config", "", "YAML file of settings (flag names as keys); flags and SCOPEGATE_* variables win over it")
	root.AddCommand(newServeCmd(), newGenCmd(), newBuildCmd(), newTestCmd(), newAuditCmd(), newDecideCmd(), newScopesCmd())
	markUsageErrors(root)
	return root
}

// bindEnv fills every flag not given on the command line from its
// SCOPEGATE_<FLAG_NAME> environment variable (dashes become underscores).
func bindEnv(cmd *cobra.Command) error {
	var err error
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if err != nil || f.Changed {
			return
		}
		name := envName(f.Name)
		if v, ok := os.LookupEnv(name); ok {
			if e := f.Value.Set(v); e != nil {
				err = fmt.Errorf("%s=%q: %w", name, v, e)
			}
		}
	})
	return err
}
