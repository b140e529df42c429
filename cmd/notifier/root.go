package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/spf13/cobra"

	"github.com/pgnotifier/notifier/config"
	"github.com/pgnotifier/notifier/internal/auth"
	"github.com/pgnotifier/notifier/internal/migrate"
	"github.com/pgnotifier/notifier/notifier"
	"github.com/pgnotifier/notifier/triggers"
)

// errUsage marks a command-line mistake (exit status 2).
var errUsage = errors.New("usage")

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "notifier",
		Short:         "Turn database changes into live events on dashboards",
		SilenceUsage:  true,
		SilenceErrors: true,
		// Runnable, so that an unknown command reaches Args (a usage error) instead
		// of cobra's own "unknown command" error (exit status 1).
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return fmt.Errorf("%w: %v", errUsage, err) })
	pf := root.PersistentFlags()
	pf.String("config", "", "YAML configuration file")
	pf.String("database-url", "", "PostgreSQL URL (NOTIFIER_DATABASE_URL)")
	pf.String("jwt-secret", "", "HS256 secret for dashboard tokens (NOTIFIER_AUTH_JWT_SECRET)")
	pf.String("log-level", "", "debug, info, warn or error (NOTIFIER_LOGGING_LEVEL)")
	pf.String("log-format", "", "json or text (NOTIFIER_LOGGING_FORMAT)")
	root.AddCommand(newServe(), newMigrate(), newToken(), newDemo(), newWatch())
	return root
}

// usageArgs marks what check rejects (an unknown command, extra arguments) as a
// usage error.
func usageArgs(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := check(cmd, args); err != nil {
			return fmt.Errorf("%w: %v", errUsage, err)
		}
		return nil
	}
}

// load reads the configuration for cmd.
func load(cmd *cobra.Command) (config.Config, error) {
	file, _ := cmd.Flags().GetString("config")
	return config.Load(file, cmd.Flags())
}

// newLogger builds the process's one logger.
func newLogger(cfg config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Logging.Level))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Logging.Format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

func newServe() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Listen for changes and serve /ws to dashboards",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := load(cmd)
			if err != nil {
				return err
			}
			svc, err := notifier.New(cfg, newLogger(cfg, os.Stderr), nil)
			if err != nil {
				return err
			}
			return svc.Run(cmd.Context())
		},
	}
	cmd.Flags().String("http-addr", "", "listen address (NOTIFIER_HTTP_ADDR, default :8080)")
	return cmd
}

func newMigrate() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "migrate up|down|status",
		Short: "Install, remove or list the notifier's triggers and event log",
		Long: "migrate applies the SQL files of the triggers folder (embedded in the binary),\n" +
			"each direction in one transaction. `notifier migrate sql` prints them for DBAs\n" +
			"who apply them with their own tool.",
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return fmt.Errorf("%w: migrate takes one of up, down, status, sql", errUsage)
			}
			switch args[0] {
			case "up", "down", "status", "sql":
				return nil
			}
			return fmt.Errorf("%w: unknown migrate action %q (up, down, status, sql)", errUsage, args[0])
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			migrations, err := migrate.Load(triggers.FS)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if args[0] == "sql" {
				down, _ := cmd.Flags().GetBool("down")
				for i := range migrations {
					m := migrations[i]
					if down {
						m = migrations[len(migrations)-1-i]
						fmt.Fprintf(out, "-- %04d_%s.down.sql\n%s\n", m.Version, m.Name, m.Down)
						continue
					}
					fmt.Fprintf(out, "-- %04d_%s.up.sql\n%s\n", m.Version, m.Name, m.Up)
				}
				return nil
			}
			cfg, err := load(cmd)
			if err != nil {
				return err
			}
			if err := cfg.RequireDatabase(); err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 5*time.Minute)
			defer cancel()
			conn, err := pgx.Connect(ctx, cfg.Database.URL)
			if err != nil {
				return fmt.Errorf("connect to database: %w", err)
			}
			defer conn.Close(context.WithoutCancel(ctx))
			return runMigrate(ctx, conn, args[0], migrations, out)
		},
	}
	cmd.Flags().Bool("down", false, "with sql: print the down files, newest first")
	return cmd
}

func runMigrate(ctx context.Context, conn *pgx.Conn, action string, migrations []migrate.Migration, out io.Writer) error {
	switch action {
	case "up":
		applied, err := migrate.Up(ctx, conn, migrations)
		if err != nil {
			return err
		}
		if len(applied) == 0 {
			fmt.Fprintln(out, "up to date")
		}
		for _, m := range applied {
			fmt.Fprintf(out, "applied %04d_%s\n", m.Version, m.Name)
		}
	case "down":
		reverted, err := migrate.Down(ctx, conn, migrations)
		if err != nil {
			return err
		}
		if len(reverted) == 0 {
			fmt.Fprintln(out, "nothing to revert")
		}
		for _, m := range reverted {
			fmt.Fprintf(out, "reverted %04d_%s\n", m.Version, m.Name)
		}
	case "status":
		list, err := migrate.List(ctx, conn, migrations)
		if err != nil {
			return err
		}
		for _, s := range list {
			state := "pending"
			if s.Applied {
				state = "applied " + s.AppliedAt.UTC().Format(time.RFC3339)
			}
			fmt.Fprintf(out, "%04d_%s\t%s\n", s.Version, s.Name, state)
		}
	}
	return nil
}

func newToken() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token --account N [--ttl 1h]",
		Short: "Print an HS256 dashboard token signed with auth.jwt_secret (for testing)",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := load(cmd)
			if err != nil {
				return err
			}
			if err := cfg.RequireSecret(); err != nil {
				return err
			}
			account, _ := cmd.Flags().GetInt64("account")
			ttl, _ := cmd.Flags().GetDuration("ttl")
			if account <= 0 {
				return fmt.Errorf("%w: --account must be a positive account id", errUsage)
			}
			if ttl < time.Second {
				return fmt.Errorf("%w: --ttl must be at least 1s", errUsage)
			}
			tok, err := auth.Mint([]byte(cfg.Auth.JWTSecret), cfg.Auth.AccountClaim, account, ttl, time.Now())
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), tok)
			return nil
		},
	}
	cmd.Flags().Int64("account", 0, "account id the token grants (required)")
	cmd.Flags().Duration("ttl", time.Hour, "how long the token is valid")
	return cmd
}
