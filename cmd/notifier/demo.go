package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/spf13/cobra"

	"github.com/pgnotifier/notifier/internal/auth"
	"github.com/pgnotifier/notifier/internal/clinicdb"
	"github.com/pgnotifier/notifier/internal/pgcluster"
	"github.com/pgnotifier/notifier/internal/simulate"
	"github.com/pgnotifier/notifier/notifier"
)

func newDemo() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run everything on a throwaway PostgreSQL: clinic schema, seed data, triggers, the service",
		Long: "demo starts a throwaway PostgreSQL (unless --database-url or NOTIFIER_DATABASE_URL\n" +
			"names one), creates the reference clinic schema and seed data where missing, installs\n" +
			"the triggers, serves on :8080 and prints a token for account 1 and the dashboard's URL.\n" +
			"A simulated clinic books, checks in, serves, finishes, reschedules and cancels appointments and hires and changes doctors for accounts 1 and 2\n" +
			"(--rate). Ctrl-C stops it and removes the throwaway database.",
		Args: usageArgs(cobra.NoArgs),
		RunE: runDemo,
	}
	cmd.Flags().String("http-addr", "", "listen address (default :8080)")
	cmd.Flags().Float64("rate", 1, "simulated clinic changes per second (0 turns the simulator off)")
	return cmd
}

func runDemo(cmd *cobra.Command, _ []string) error {
	ctx := cmd.Context()
	cfg, err := load(cmd)
	if err != nil {
		return err
	}
	rate, _ := cmd.Flags().GetFloat64("rate")
	if !(rate >= 0 && rate <= simulate.MaxRate) {
		return fmt.Errorf("%w: --rate must be from 0 to %d changes per second", errUsage, simulate.MaxRate)
	}
	if !cmd.Flags().Changed("log-format") && os.Getenv("NOTIFIER_LOGGING_FORMAT") == "" {
		cfg.Logging.Format = "text"
	}
	logger := newLogger(cfg, os.Stderr)
	out := cmd.OutOrStdout()

	if cfg.Database.URL == "" {
		fmt.Fprintln(out, "starting a throwaway PostgreSQL (initdb, pg_ctl)...")
		started := time.Now()
		cluster, err := pgcluster.Start(ctx, pgcluster.Options{Logger: logger})
		if err != nil {
			return fmt.Errorf("demo: %w", err)
		}
		defer func() {
			if err := cluster.Close(context.WithoutCancel(ctx)); err != nil {
				logger.With("component", "demo").Warn("remove throwaway database", "error", err)
			} else {
				fmt.Fprintln(out, "throwaway PostgreSQL stopped and removed")
			}
		}()
		cfg.Database.URL = cluster.ConnString("postgres")
		fmt.Fprintf(out, "PostgreSQL ready on 127.0.0.1:%d in %s\n", cluster.Port(), time.Since(started).Round(10*time.Millisecond))
	}
	if err := prepareDemo(ctx, cfg.Database.URL, out); err != nil {
		return err
	}
	secretEnv := "NOTIFIER_AUTH_JWT_SECRET=<your auth.jwt_secret>"
	if cfg.Auth.JWTSecret == "" {
		b := make([]byte, 32)
		_, _ = rand.Read(b)
		cfg.Auth.JWTSecret = hex.EncodeToString(b)
		secretEnv = "NOTIFIER_AUTH_JWT_SECRET=" + cfg.Auth.JWTSecret // this run's own, drawn now
	}
	token, err := auth.Mint([]byte(cfg.Auth.JWTSecret), cfg.Auth.AccountClaim, 1, 12*time.Hour, time.Now())
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", cfg.HTTP.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.HTTP.Addr, err)
	}
	svc, err := notifier.New(cfg, logger, ln)
	if err != nil {
		ln.Close()
		return err
	}
	errc := make(chan error, 1)
	go func() { errc <- svc.Run(ctx) }()
	select {
	case <-svc.Started():
		printDemo(out, ln.Addr(), token, secretEnv, cfg.Database.URL, rate)
	case err := <-errc:
		return err
	}
	stopSimulator := startSimulator(ctx, cfg.Database.URL, rate, logger)
	err = <-errc
	stopSimulator()
	return err
}

// prepareDemo creates the clinic schema and seed where missing and installs the triggers.
func prepareDemo(ctx context.Context, url string, out io.Writer) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return fmt.Errorf("demo: connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	applied, err := clinicdb.Prepare(ctx, conn)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	for _, m := range applied {
		fmt.Fprintf(out, "installed triggers %04d_%s\n", m.Version, m.Name)
	}
	return nil
}

func printDemo(out io.Writer, addr net.Addr, token, secretEnv, dbURL string, rate float64) {
	host := addr.String()
	if tcp, ok := addr.(*net.TCPAddr); ok && (tcp.IP.IsUnspecified() || tcp.IP == nil) {
		host = fmt.Sprintf("localhost:%d", tcp.Port)
	}
	simulated := "off (--rate 0)"
	if rate > 0 {
		simulated = fmt.Sprintf("about %s changes/s for accounts 1 and 2 (--rate)", strconv.FormatFloat(rate, 'f', -1, 64))
	}
	fmt.Fprintf(out, `
notifier is live on http://%[1]s

open the live dashboard (account 1):
  http://%[1]s/?token=%[2]s

token for account 1 (valid 12h):
  %[2]s

connect a dashboard of your own:
  plain WebSocket:  ws://%[1]s/ws?access_token=<token>
  Socket.IO:        io("http://%[1]s", { auth: { token } })
  terminal:         NOTIFIER_WATCH_TOKEN=<token> notifier watch --url http://%[1]s --snapshot
  its lists first:  curl -H "Authorization: Bearer <token>" http://%[1]s/v1/snapshot/appointments.today

tokens for other accounts (this demo's secret):
  %[5]s notifier token --account 2
  %[5]s notifier watch --url http://%[1]s --account 2

simulated clinic: %[4]s

make a change yourself and watch it arrive:
  psql '%[3]s' -c "INSERT INTO appointments (date, \"startTime\", \"endTime\", \"doctorId\", \"patientId\", \"statusId\", \"accountId\") VALUES (now(), '09:00', '09:15', 1, 1, 1, 1)"

Ctrl-C stops the demo.
`, host, token, redactURL(dbURL), simulated, secretEnv)
}

// redactURL hides a password in a connection URL.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}
