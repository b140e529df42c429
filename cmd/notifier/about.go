package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/pgnotifier/notifier/internal/buildinfo"
)

// versionText is what `notifier version` and `--version` print.
func versionText() string {
	bi := buildinfo.Read()
	commit := bi.Revision
	if bi.Time != "" {
		commit += " " + bi.Time
	}
	if bi.GoVersion == "" {
		return "notifier " + bi.Version
	}
	return fmt.Sprintf("notifier %s\ncommit %s\n%s", bi.Version, commit, bi.GoVersion)
}

func newVersion() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit and Go version",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintln(cmd.OutOrStdout(), versionText())
			return err
		},
	}
}

func newConfig() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config check",
		Short: "Check the configuration (file, environment, flags) without starting",
		Long: "config check loads the configuration as serve would (--config, NOTIFIER_*, flags) and\n" +
			"reports the first problem in one line (exit 2), or what serving still needs.",
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if args[0] != "check" {
				return fmt.Errorf("%w: unknown config action %q (check)", errUsage, args[0])
			}
			cfg, err := load(cmd)
			if err != nil {
				return err
			}
			if err := cfg.RequireServe(); err != nil {
				return err
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), "configuration ok")
			return err
		},
	}
	return cmd
}
