package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/pgnotifier/notifier/config"
	"github.com/pgnotifier/notifier/internal/auth"
	"github.com/pgnotifier/notifier/internal/migrate"
	"github.com/pgnotifier/notifier/internal/rules"
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
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		var unknown *pflag.NotExistError
		if errors.As(err, &unknown) {
			if removed := config.RemovedFlag(unknown.GetSpecifiedName()); removed != nil {
				return removed
			}
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	})
	pf := root.PersistentFlags()
	pf.String("config", "", "YAML configuration file")
	pf.String("database-url", "", "PostgreSQL URL (NOTIFIER_DATABASE_URL)")
	pf.String("jwt-secret-file", "", "file holding the HS256 secret for dashboard tokens (auth.jwt_secret_file; or NOTIFIER_AUTH_JWT_SECRET)")
	pf.String("log-level", "", "debug, info, warn or error (NOTIFIER_LOGGING_LEVEL)")
	pf.String("log-format", "", "json or text (NOTIFIER_LOGGING_FORMAT)")
	root.AddCommand(newServe(), newMigrate(), newRules(), newToken(), newDemo(), newWatch(), newVersion(), newConfig())
	root.Version = versionText()
	root.SetVersionTemplate("{{.Version}}\n")
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
	cfg, err := config.Load(file, cmd.Flags())
	if err != nil {
		return config.Config{}, err
	}
	// --rules and --dir win over the file and the environment, as the flags
	// config.Flags maps do.
	for name, key := range map[string]*string{"rules": &cfg.Rules.File, "dir": &cfg.Rules.Dir} {
		if f := cmd.Flags().Lookup(name); f != nil && f.Changed {
			*key = f.Value.String()
		}
	}
	return cfg, nil
}

// rulesFlags adds --rules and --dir (rules.file, rules.dir) to cmd.
func rulesFlags(cmd *cobra.Command, file bool) {
	if file {
		cmd.Flags().String("rules", "", "the rule file (NOTIFIER_RULES_FILE)")
	}
	cmd.Flags().String("dir", "", "folder of generated rules migrations (NOTIFIER_RULES_DIR)")
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
		Use:   "migrate up|down|status|sql",
		Short: "Install, remove or list the notifier's triggers and event log",
		Long: "migrate applies the SQL files of the triggers folder (embedded in the binary) and\n" +
			"the rules migrations in rules.dir, each direction in one transaction. `notifier\n" +
			"migrate sql` prints them for DBAs who apply them with their own tool.",
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
			cfg, err := load(cmd)
			if err != nil {
				return err
			}
			migrations, err := loadMigrations(cfg.Rules.Dir)
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
			to := -1
			if f := cmd.Flags().Lookup("to"); f.Changed {
				if args[0] != "down" {
					return fmt.Errorf("%w: --to goes with migrate down", errUsage)
				}
				to, _ = cmd.Flags().GetInt("to")
				if to < 0 {
					return fmt.Errorf("%w: --to must be a migration version (0 or more)", errUsage)
				}
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
			return runMigrate(ctx, conn, args[0], to, migrations, out)
		},
	}
	cmd.Flags().Bool("down", false, "with sql: print the down files, newest first")
	cmd.Flags().Int("to", 0, "with down: revert only the migrations above this version, keeping schema notifier (the newest built-in: back to the built-in rules)")
	rulesFlags(cmd, false)
	return cmd
}

// firstRulesVersion is the lowest version of a migration in rules.dir: the built-in
// ones stay below it.
const firstRulesVersion = 1001

// loadMigrations returns the built-in migrations and, when dir is set, the rules
// migrations in it.
func loadMigrations(dir string) ([]migrate.Migration, error) {
	builtin, err := migrate.Load(triggers.FS)
	if err != nil {
		return nil, err
	}
	if dir == "" {
		return builtin, nil
	}
	own, err := loadRulesDir(dir)
	if err != nil {
		return nil, err
	}
	return migrate.Merge(builtin, own)
}

// loadRulesDir reads the migrations in rules.dir, each numbered from 1001.
func loadRulesDir(dir string) ([]migrate.Migration, error) {
	ms, err := migrate.Load(os.DirFS(dir))
	if err != nil {
		return nil, fmt.Errorf("%w: rules.dir %s: %v", config.ErrInvalid, dir, err)
	}
	for _, m := range ms {
		if m.Version < firstRulesVersion {
			return nil, fmt.Errorf("%w: rules.dir %s: migration %04d_%s: versions there start at %d (below are the built-in ones)",
				config.ErrInvalid, dir, m.Version, m.Name, firstRulesVersion)
		}
	}
	return ms, nil
}

func runMigrate(ctx context.Context, conn *pgx.Conn, action string, to int, migrations []migrate.Migration, out io.Writer) error {
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
		var reverted []migrate.Migration
		var err error
		if to >= 0 {
			reverted, err = migrate.DownTo(ctx, conn, migrations, to)
		} else {
			reverted, err = migrate.Down(ctx, conn, migrations)
		}
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
		events, err := migrate.Events(ctx, conn)
		if err != nil {
			return fmt.Errorf("migrate status: %w", err)
		}
		for _, e := range events {
			printEvent(out, e.Name, e.Rule, e.Op, e.AliasOf)
		}
	}
	return nil
}

// printEvent writes one installed (or, for rules check, to be installed) event.
func printEvent(out io.Writer, name, rule, op, aliasOf string) {
	fmt.Fprintf(out, "event %s\trule %s\ton %s", name, rule, op)
	if aliasOf != "" {
		fmt.Fprintf(out, "\talias of %s", aliasOf)
	}
	fmt.Fprintln(out)
}

func newRules() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rules sql|check",
		Short: "Turn the rule file (rules.file) into a migration in rules.dir, or check it",
		Long: "rules sql lays the rule file over the built-in rules and writes the migration from\n" +
			"the rules the newest migration in rules.dir installs (else the built-in ones) to\n" +
			"those, as NNNN_rules.up.sql and .down.sql in rules.dir, for review and `notifier\n" +
			"migrate up`. rules check parses and checks the file and lists its events, writing\n" +
			"nothing. The database checks tables, columns and SQL when the migration is applied.",
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 || (args[0] != "sql" && args[0] != "check") {
				return fmt.Errorf("%w: rules takes one of sql, check", errUsage)
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := load(cmd)
			if err != nil {
				return err
			}
			if cfg.Rules.File == "" {
				return fmt.Errorf("%w: rules.file: required (NOTIFIER_RULES_FILE or --rules)", config.ErrInvalid)
			}
			base, next, err := readRules(cfg.Rules.File)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if args[0] == "check" {
				for _, r := range next.Rules {
					for _, e := range r.Events {
						printEvent(out, e.Name, r.Name, e.On, "")
						for _, a := range e.Aliases {
							printEvent(out, a, r.Name, e.On, e.Name)
						}
					}
				}
				return nil
			}
			if cfg.Rules.Dir == "" {
				return fmt.Errorf("%w: rules.dir: required (NOTIFIER_RULES_DIR or --dir)", config.ErrInvalid)
			}
			return writeRules(cfg.Rules.Dir, base, next, out)
		},
	}
	rulesFlags(cmd, true)
	return cmd
}

// readRules returns the built-in rules (those the newest built-in migration recording
// them installs) and the rule file laid over them.
func readRules(file string) (base, next rules.Set, err error) {
	builtin, err := migrate.Load(triggers.FS)
	if err != nil {
		return rules.Set{}, rules.Set{}, err
	}
	for i := len(builtin) - 1; i >= 0; i-- {
		s, ok, err := rules.State(builtin[i].Up)
		if err != nil {
			return rules.Set{}, rules.Set{}, fmt.Errorf("built-in migration %04d_%s: %w", builtin[i].Version, builtin[i].Name, err)
		}
		if ok {
			base = s
			break
		}
	}
	f, err := rules.ReadFile(file)
	if err != nil {
		return rules.Set{}, rules.Set{}, fmt.Errorf("%w: %w", config.ErrInvalid, err)
	}
	next, err = rules.Apply(base, f)
	if err != nil {
		return rules.Set{}, rules.Set{}, fmt.Errorf("%w: %s: %w", config.ErrInvalid, file, err)
	}
	return base, next, nil
}

// writeRules writes the migration from the rules dir's newest migration leaves
// installed (else base) to next, numbered after the dir's newest, and prints its paths;
// or, when there is nothing to change, says so and writes nothing.
func writeRules(dir string, base, next rules.Set, out io.Writer) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("rules sql: %w", err)
	}
	own, err := loadRulesDir(dir)
	if err != nil {
		return err
	}
	prev, last := base, firstRulesVersion-1
	if len(own) > 0 {
		last = own[len(own)-1].Version
	}
	for i := len(own) - 1; i >= 0; i-- {
		s, ok, err := rules.State(own[i].Up)
		if err != nil {
			return fmt.Errorf("rules sql: %04d_%s: %w", own[i].Version, own[i].Name, err)
		}
		if ok {
			prev = s
			break
		}
	}
	if next.Equal(prev) {
		fmt.Fprintln(out, "no rule changes")
		return nil
	}
	m := rules.Generate(prev, next)
	name := fmt.Sprintf("%04d_rules", last+1)
	up, down := filepath.Join(dir, name+".up.sql"), filepath.Join(dir, name+".down.sql")
	for path, body := range map[string]string{up: m.Up, down: m.Down} {
		// O_EXCL: a migration once written is never rewritten (it may be applied).
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			return fmt.Errorf("rules sql: %w", err)
		}
		_, err = f.WriteString(body)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("rules sql: write %s: %w", path, err)
		}
	}
	fmt.Fprintln(out, up)
	fmt.Fprintln(out, down)
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
