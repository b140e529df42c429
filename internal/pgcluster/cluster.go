package pgcluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// startAttempts is how many ports Start tries when the kernel-picked port is
// taken before the server binds it.
const startAttempts = 3

// cleanupTimeout bounds the stop and removal after a failed Start, which runs
// even when the caller's context has ended.
const cleanupTimeout = 30 * time.Second

// maxSocketPath is the longest Unix socket path the server can bind (the
// sun_path limit, minus its terminating NUL).
const maxSocketPath = 107

// Options configures Start. The zero value is ready to use.
type Options struct {
	// Dir is the parent of the cluster directory; "" means the system
	// temporary directory.
	Dir string
	// Port is the TCP port on 127.0.0.1; 0 picks a free one.
	Port int
	// Logger receives start, stop and retry records; nil discards them.
	Logger *slog.Logger
	// Settings are extra postgresql.conf settings, written after the
	// defaults so they override them (for example "max_connections"). They
	// cannot set port, listen_addresses or unix_socket_directories.
	Settings map[string]string
}

// Cluster is a running (or stopped) throwaway PostgreSQL cluster made by Start.
type Cluster struct {
	dir     string // owned by the Cluster; removed by Close
	dataDir string
	logFile string
	port    int
	pgCtl   string
	run     runner
	log     *slog.Logger

	mu     sync.Mutex // serialises Stop, Restart and Close
	closed bool
}

// Start creates a cluster in a new directory and starts it: initdb --no-sync
// as superuser "postgres" with trust authentication, UTF8 and the C locale;
// fsync, synchronous_commit and full_page_writes off; listening on 127.0.0.1
// only, with max_connections=300. It returns once the server accepts
// connections. On error nothing is left behind.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	return start(ctx, opts, freePort)
}

// start is Start with the port picker as a parameter, so a test can hand
// out a taken port and watch the retry.
func start(ctx context.Context, opts Options, pickPort func() (int, error)) (*Cluster, error) {
	began := time.Now()
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if opts.Port < 0 || opts.Port > 65535 {
		return nil, fmt.Errorf("start postgres: port %d out of range", opts.Port)
	}
	settings, err := settingsBlock(opts.Settings)
	if err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	pgCtl, err := FindBin("pg_ctl")
	if err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	// initdb must match pg_ctl's version: take its sibling when there is one.
	initdb := filepath.Join(filepath.Dir(pgCtl), "initdb")
	if !isExecutable(initdb) {
		if initdb, err = FindBin("initdb"); err != nil {
			return nil, fmt.Errorf("start postgres: %w", err)
		}
	}
	runAs, err := lookupRunAs()
	if err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	dir, err := os.MkdirTemp(opts.Dir, "pgcluster-")
	if err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	if dir, err = filepath.Abs(dir); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	c := &Cluster{
		dir:     dir,
		dataDir: filepath.Join(dir, "data"),
		logFile: filepath.Join(dir, "postgres.log"),
		pgCtl:   pgCtl,
		run:     runner{dir: dir, runAs: runAs},
		log:     logger.With("component", "pgcluster"),
	}
	ok := false
	defer func() {
		if ok {
			return
		}
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		if err := c.close(cctx); err != nil {
			c.log.WarnContext(ctx, "cleanup after failed start", "dir", dir, "err", err)
		}
	}()

	if err := runAs.own(dir); err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	if _, err := c.run.run(ctx, initdb, "-D", c.dataDir, "--no-sync", "-U", "postgres",
		"-A", "trust", "-E", "UTF8", "--locale=C"); err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	confPath := filepath.Join(c.dataDir, "postgresql.conf")
	baseConf, err := os.ReadFile(confPath)
	if err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	initialized := time.Now()

	for attempt := 1; ; attempt++ {
		port := opts.Port
		if port == 0 {
			if port, err = pickPort(); err != nil {
				return nil, fmt.Errorf("start postgres: %w", err)
			}
		}
		// Rewriting the file (owned by the server user, which root may
		// write) keeps its owner and mode.
		conf := slices.Concat(baseConf, settings, c.listenBlock(port))
		if err := os.WriteFile(confPath, conf, 0o600); err != nil {
			return nil, fmt.Errorf("start postgres: %w", err)
		}
		offset := fileSize(c.logFile)
		err := c.start(ctx)
		if err == nil {
			c.port = port
			break
		}
		inUse := addrInUse(c.serverLog(offset))
		if ctx.Err() == nil {
			// pg_ctl gives up after its own timeout and leaves a slow
			// server running; stop it before trying again.
			_ = c.stopIfRunning(ctx)
		}
		if !inUse || opts.Port != 0 || attempt == startAttempts || ctx.Err() != nil {
			return nil, fmt.Errorf("start postgres on port %d: %w", port, err)
		}
		c.log.WarnContext(ctx, "port taken before the server bound it, retrying",
			"port", port, "attempt", attempt)
	}
	ok = true
	c.log.InfoContext(ctx, "postgres started", "port", c.port, "dir", c.dir,
		"initdb_elapsed", initialized.Sub(began), "elapsed", time.Since(began))
	return c, nil
}

// settingsBlock renders the default and extra settings for postgresql.conf.
func settingsBlock(extra map[string]string) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString("\n# Added by pgcluster: a throwaway cluster, fast and not durable.\n")
	for _, kv := range [][2]string{
		{"fsync", "off"},
		{"synchronous_commit", "off"},
		{"full_page_writes", "off"},
		{"max_connections", "300"},
	} {
		writeSetting(&b, kv[0], kv[1])
	}
	keys := make([]string, 0, len(extra))
	for k := range extra {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !validSettingName(k) {
			return nil, fmt.Errorf("setting %q: not a setting name", k)
		}
		switch strings.ToLower(k) {
		case "port", "listen_addresses", "unix_socket_directories":
			return nil, fmt.Errorf("setting %q: set by pgcluster (use Options.Port)", k)
		}
		if strings.ContainsAny(extra[k], "\r\n\x00") {
			return nil, fmt.Errorf("setting %q: value contains a line break", k)
		}
		writeSetting(&b, k, extra[k])
	}
	return b.Bytes(), nil
}

// validSettingName reports whether name looks like a parameter name,
// custom ones ("auto_explain.log_min_duration") included, so no name can
// smuggle a second line into postgresql.conf.
func validSettingName(name string) bool {
	parts := strings.Split(name, ".")
	if len(parts) > 2 {
		return false
	}
	for _, p := range parts {
		if p == "" || isDigit(rune(p[0])) {
			return false
		}
		for _, r := range p {
			if r != '_' && !isDigit(r) && (r < 'a' || r > 'z') && (r < 'A' || r > 'Z') {
				return false
			}
		}
	}
	return true
}

// writeSetting writes one setting as a quoted string: postgresql.conf
// doubles a quote inside one and processes backslash escapes.
func writeSetting(b *bytes.Buffer, name, value string) {
	value = strings.NewReplacer(`\`, `\\`, `'`, `''`).Replace(value)
	fmt.Fprintf(b, "%s = '%s'\n", name, value)
}

// listenBlock renders the settings that depend on the port. The Unix socket
// goes in the cluster directory, away from /var/run/postgresql and other
// clusters; when that path would be too long for a socket, the server
// listens on TCP only, which is all ConnString uses.
func (c *Cluster) listenBlock(port int) []byte {
	var b bytes.Buffer
	writeSetting(&b, "listen_addresses", "127.0.0.1")
	writeSetting(&b, "port", strconv.Itoa(port))
	sockDir := c.dir
	if len(filepath.Join(sockDir, ".s.PGSQL."+strconv.Itoa(port))) > maxSocketPath {
		sockDir = ""
	}
	writeSetting(&b, "unix_socket_directories", sockDir)
	return b.Bytes()
}

// freePort asks the kernel for a free port on 127.0.0.1 and releases it.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pick a free port: %w", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		return 0, fmt.Errorf("pick a free port: %w", err)
	}
	return port, nil
}

// start runs pg_ctl start and waits until the server accepts connections.
// When it fails, the error carries the tail of the server log, where
// postgres writes why (pg_ctl only says "could not start server").
func (c *Cluster) start(ctx context.Context) error {
	offset := fileSize(c.logFile)
	_, err := c.run.run(ctx, c.pgCtl, "start", "-w", "-D", c.dataDir, "-l", c.logFile)
	if err == nil {
		return nil
	}
	if log := c.serverLog(offset); len(log) > 0 {
		return fmt.Errorf("%w\nserver log:\n%s", err, tail(log))
	}
	return err
}

// serverLog returns what the server logged from offset on.
func (c *Cluster) serverLog(offset int64) []byte {
	f, err := os.Open(c.logFile)
	if err != nil {
		return nil
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return nil
	}
	b, _ := io.ReadAll(io.LimitReader(f, 1<<20))
	return b
}

// addrInUse reports whether a server log says the port was taken.
func addrInUse(log []byte) bool {
	return bytes.Contains(log, []byte("Address already in use"))
}

// fileSize returns the size of path, or 0 when it does not exist.
func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// ConnString returns a URL for database on the cluster, as superuser
// "postgres" over TCP without TLS. It stays valid across Stop and Restart.
func (c *Cluster) ConnString(database string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.port, url.PathEscape(database))
}

// Port returns the TCP port the cluster listens on, on 127.0.0.1.
func (c *Cluster) Port() int { return c.port }

// Dir returns the cluster directory: data/ holds the data directory and
// postgres.log the server log. Close removes it.
func (c *Cluster) Dir() string { return c.dir }

// Stop stops the server with pg_ctl stop -m mode and waits until it is gone,
// keeping the data. mode is "fast" (roll back and disconnect clients),
// "immediate" (abort without a shutdown checkpoint, as a crash would; the
// next start recovers) or "smart" (wait for clients to disconnect); ""
// means "fast". Stopping a stopped server is an error.
func (c *Cluster) Stop(ctx context.Context, mode string) error {
	if mode == "" {
		mode = "fast"
	}
	switch mode {
	case "fast", "immediate", "smart":
	default:
		return fmt.Errorf("stop postgres: unknown mode %q (want fast, immediate or smart)", mode)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return fmt.Errorf("stop postgres: %w", errClosed)
	}
	if err := c.stop(ctx, mode); err != nil {
		return fmt.Errorf("stop postgres: %w", err)
	}
	c.log.InfoContext(ctx, "postgres stopped", "port", c.port, "mode", mode)
	return nil
}

// Restart starts the server again on the same directory and port, after a
// Stop or a crash, and waits until it accepts connections. A running server
// is first stopped with "fast". It fails if the port was taken meanwhile.
func (c *Cluster) Restart(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return fmt.Errorf("restart postgres: %w", errClosed)
	}
	running, err := c.running(ctx)
	if err != nil {
		return fmt.Errorf("restart postgres: %w", err)
	}
	if running {
		if err := c.stop(ctx, "fast"); err != nil {
			return fmt.Errorf("restart postgres: %w", err)
		}
	}
	began := time.Now()
	if err := c.start(ctx); err != nil {
		return fmt.Errorf("restart postgres on port %d: %w", c.port, err)
	}
	c.log.InfoContext(ctx, "postgres restarted", "port", c.port, "elapsed", time.Since(began))
	return nil
}

// Close stops the server with "immediate", if it runs, and removes the
// cluster directory. Calling it again does nothing.
func (c *Cluster) Close(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	if err := c.close(ctx); err != nil {
		return fmt.Errorf("close postgres: %w", err)
	}
	c.closed = true
	c.log.InfoContext(ctx, "postgres closed", "port", c.port, "dir", c.dir)
	return nil
}

// errClosed reports use of a Cluster after Close.
var errClosed = errors.New("cluster closed")

// close stops the server if it runs and removes the directory. It keeps the
// directory when the server may still be running, since removing the files
// of a live server would leave it running, unreachable.
func (c *Cluster) close(ctx context.Context) error {
	if err := c.stopIfRunning(ctx); err != nil {
		return err
	}
	if err := os.RemoveAll(c.dir); err != nil {
		return fmt.Errorf("remove cluster directory: %w", err)
	}
	return nil
}

// stopIfRunning stops the server with "immediate" unless it is not running.
func (c *Cluster) stopIfRunning(ctx context.Context) error {
	if _, err := os.Stat(filepath.Join(c.dataDir, "postmaster.pid")); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	err := c.stop(ctx, "immediate")
	if err == nil {
		return nil
	}
	// The server may have died on its own (killed, or stopped by someone
	// else) and left a stale pid file: that is not running either.
	if running, serr := c.running(ctx); serr == nil && !running {
		return nil
	}
	return err
}

// stop runs pg_ctl stop -m mode and waits for the server to exit.
func (c *Cluster) stop(ctx context.Context, mode string) error {
	_, err := c.run.run(ctx, c.pgCtl, "stop", "-w", "-D", c.dataDir, "-m", mode)
	return err
}

// running asks pg_ctl status whether a server runs on the data directory.
func (c *Cluster) running(ctx context.Context) (bool, error) {
	_, err := c.run.run(ctx, c.pgCtl, "status", "-D", c.dataDir)
	switch {
	case err == nil:
		return true, nil
	case exitCode(err) == 3: // documented: no server running
		return false, nil
	default:
		return false, err
	}
}
