package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

// usageError marks a command-line mistake (unknown command or flag, a bad
// flag value, a stray argument): exit status 2, never 1, which audit verify
// reserves for a broken chain and decide for "anything unexpected".
func usageError(err error) error {
	if _, ok := errors.AsType[*exitError](err); ok {
		return err
	}
	return &exitError{code: exitInvalid, err: err}
}

// markUsageErrors makes every mistake cobra finds while parsing the command
// line a usage error: bad flags, wrong positional arguments, and unknown
// subcommands. A command group (audit, the root) given an unknown
// subcommand would otherwise print its help and exit 0.
func markUsageErrors(root *cobra.Command) {
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageError(fmt.Errorf("%w (see %s --help)", err, c.CommandPath()))
	})
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		switch {
		case !c.Runnable():
			c.SuggestionsMinimumDistance = 2
			c.Args = unknownSubcommand
			c.RunE = func(c *cobra.Command, _ []string) error { return c.Help() }
		case c.Args != nil:
			check := c.Args
			c.Args = func(c *cobra.Command, args []string) error {
				if err := check(c, args); err != nil {
					return usageError(fmt.Errorf("%w (see %s --help)", err, c.CommandPath()))
				}
				return nil
			}
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

func unknownSubcommand(c *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], c.CommandPath())
	if s := c.SuggestionsFor(args[0]); len(s) > 0 {
		msg += fmt.Sprintf(" (did you mean %s?)", strings.Join(s, ", "))
	}
	return usageError(fmt.Errorf("%s (see %s --help)", msg, c.CommandPath()))
}
