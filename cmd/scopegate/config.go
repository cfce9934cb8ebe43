package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"gopkg.in/yaml.v3"
)

// envName is the environment variable that sets flag name.
func envName(name string) string {
	return "SCOPEGATE_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// applyConfig fills flags from the YAML file given by --config (or
// SCOPEGATE_CONFIG): a mapping of flag names to values, e.g.
//
//	addr: 0.0.0.0:8282
//	auth-tokens: /etc/scopegate/tokens
//	decision-log-mask: [/input/resource/owner]
//
// A flag given on the command line or in the environment wins over the file.
// Keys that are flags of another command are skipped, so one file can serve
// several commands; a key that is no command's flag is an error naming its
// line.
func applyConfig(cmd *cobra.Command, path string) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read config: %w", err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if len(doc.Content) == 0 {
		return nil
	}
	m := doc.Content[0]
	if m.Kind != yaml.MappingNode {
		return fmt.Errorf("%s:%d: want a mapping of flag names to values", path, m.Line)
	}
	known := allFlagNames(cmd.Root())
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		f := cmd.Flags().Lookup(k.Value)
		if f == nil {
			if !known[k.Value] {
				return fmt.Errorf("%s:%d: unknown setting %q (settings are flag names, e.g. addr)", path, k.Line, k.Value)
			}
			continue
		}
		if f.Changed {
			continue
		}
		if _, inEnv := os.LookupEnv(envName(f.Name)); inEnv {
			continue
		}
		var value string
		switch v.Kind {
		case yaml.ScalarNode:
			value = v.Value
		case yaml.SequenceNode:
			items := make([]string, 0, len(v.Content))
			for _, item := range v.Content {
				if item.Kind != yaml.ScalarNode {
					return fmt.Errorf("%s:%d: %s: want a list of plain values", path, item.Line, k.Value)
				}
				items = append(items, item.Value)
			}
			value = strings.Join(items, ",")
		default:
			return fmt.Errorf("%s:%d: %s: want a value or a list", path, v.Line, k.Value)
		}
		if err := f.Value.Set(value); err != nil {
			return fmt.Errorf("%s:%d: %s: %w", path, v.Line, k.Value, err)
		}
		f.Changed = true
	}
	return nil
}

func allFlagNames(root *cobra.Command) map[string]bool {
	names := map[string]bool{}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		c.Flags().VisitAll(func(f *pflag.Flag) { names[f.Name] = true })
		c.PersistentFlags().VisitAll(func(f *pflag.Flag) { names[f.Name] = true })
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	return names
}
