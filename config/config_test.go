package config_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
	"go.uber.org/goleak"

	"github.com/pgnotifier/notifier/config"
)

func TestMain(m *testing.M) {
	// The tests set what they need; a NOTIFIER_* variable from the caller's shell
	// would change what Load returns.
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, "NOTIFIER_") {
			os.Unsetenv(name)
		}
	}
	goleak.VerifyTestMain(m)
}

const secret = "0123456789abcdef0123456789abcdef" // 32 bytes

// envName is the environment variable for key.
func envName(key string) string {
	return "NOTIFIER_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// writeSecret writes s and a newline to a file only its owner may read, and returns
// its path.
func writeSecret(t *testing.T, s string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(path, []byte(s+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// writeFile writes a YAML config file into a temp dir and returns its path.
func writeFile(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notifier.yaml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// flagSet declares the flags of config.Flags as cmd/notifier does, and parses args.
func flagSet(t *testing.T, args ...string) *pflag.FlagSet {
	t.Helper()
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	for name := range config.Flags {
		fs.String(name, "", "")
	}
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return fs
}

// keys lists the configuration keys of Config's mapstructure tags, "database.url" and so on.
func keys(t reflect.Type, prefix string) []string {
	var out []string
	for f := range t.Fields() {
		tag := f.Tag.Get("mapstructure")
		if tag == "" || tag == "-" {
			continue
		}
		if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeFor[time.Duration]() {
			out = append(out, keys(f.Type, prefix+tag+".")...)
			continue
		}
		out = append(out, prefix+tag)
	}
	return out
}

func defaults() config.Config {
	return config.Config{
		Database: config.Database{MaxConns: 8, StatementTimeout: 10 * time.Second},
		HTTP: config.HTTP{
			Addr: ":8080", ShutdownTimeout: 10 * time.Second, HandshakeTimeout: 10 * time.Second,
			ReadTimeout: 15 * time.Second, IdleTimeout: 30 * time.Second, MaxHeaderBytes: 16 << 10,
			MaxConnections: 10000, MaxConnectionsPerAccount: 1000,
		},
		Auth: config.Auth{Algorithm: "HS256", AccountClaim: "accountId", JWKSRefresh: 10 * time.Minute, JWKSMinRefresh: 30 * time.Second},

		Hub: config.Hub{ReplayBuffer: 1024, ReplayCache: 8192, MaxLag: 30 * time.Second},
		WS:  config.WS{PingInterval: 25 * time.Second, PongWait: time.Minute, WriteWait: 10 * time.Second, ReadLimit: 4096, MaxClientMessages: 10},
		SocketIO: config.SocketIO{
			PingInterval: 25 * time.Second, PingTimeout: 20 * time.Second, MaxPayload: 1000000, ConnectTimeout: 10 * time.Second,
			MaxUnauthenticated: 1000, MaxUnauthenticatedPerAddress: 50, MaxClientPackets: 10,
			RelayMaxBytes: 16384, RelayRate: 10,
		},
		Log:      config.Log{Retention: 24 * time.Hour, PruneInterval: time.Minute},
		Listen:   config.Listen{IdleCheck: 5 * time.Second, ReconnectMin: 100 * time.Millisecond, ReconnectMax: 5 * time.Second, PageSize: 1000},
		Logging:  config.Logging{Level: "info", Format: "json"},
		Snapshot: config.Snapshot{MaxConcurrent: 4, MaxQueued: 64, MaxItems: 10000, CursorTTL: time.Minute},
		Fleet:    config.Fleet{Lease: 5 * time.Second},
	}
}

func mustLoad(t *testing.T, file string, flags *pflag.FlagSet) config.Config {
	t.Helper()
	c, err := config.Load(file, flags)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return c
}

func checkConfig(t *testing.T, got, want config.Config) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("config:\n got %+v\nwant %+v", got, want)
	}
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	checkConfig(t, mustLoad(t, "", nil), defaults())
	// Flags that exist but were not set must not replace the defaults with "".
	checkConfig(t, mustLoad(t, "", flagSet(t)), defaults())
}

// everyKey sets every key to a value that differs from its default, as an environment
// variable and as YAML, and the Config it must load into.
var everyKey = []struct {
	key, env, yaml string
}{
	{"database.url", "postgres://app@db.example:5432/clinic", "postgres://app@db.example:5432/clinic"},
	{"database.max_conns", "3", "3"},
	{"database.statement_timeout", "0", "0s"}, // 0 disables it
	{"http.addr", "127.0.0.1:9000", "127.0.0.1:9000"},
	{"http.internal_addr", "127.0.0.1:9100", "127.0.0.1:9100"},
	{"http.allowed_origins", "https://a.example, https://b.example", "[https://a.example, https://b.example]"},
	{"http.drain_delay", "4s", "4s"},
	{"http.shutdown_timeout", "3s", "3s"},
	{"http.handshake_timeout", "4s", "4s"},
	{"http.read_timeout", "5s", "5s"},
	{"http.idle_timeout", "6s", "6s"},
	{"http.max_header_bytes", "8192", "8192"},
	{"http.max_connections", "0", "0"}, // 0 is unlimited
	{"http.max_connections_per_account", "5", "5"},
	{"http.tls_cert", "/etc/notifier/cert.pem", "/etc/notifier/cert.pem"},
	{"http.tls_key", "/etc/notifier/key.pem", "/etc/notifier/key.pem"},
	{"auth.jwt_secret", secret, secret},
	{"auth.account_claim", "tenant", "tenant"},
	{"auth.jwks_refresh", "5m", "5m"},
	{"auth.jwks_min_refresh", "10s", "10s"},
	{"auth.es256_low_s", "true", "true"},
	{"auth.issuer", "https://id.example", "https://id.example"},
	{"auth.audience", "notifier", "notifier"},
	{"events", "doctors.created", "[doctors.created]"},
	{"hub.replay_buffer", "16", "16"},
	{"hub.replay_cache", "0", "0"},
	{"hub.max_lag", "5s", "5s"},
	{"ws.ping_interval", "1s", "1s"},
	{"ws.pong_wait", "2s", "2s"},
	{"ws.write_wait", "3s", "3s"},
	{"ws.read_limit", "512", "512"},
	{"ws.max_client_messages", "3", "3"},
	{"socketio.ping_interval", "5s", "5s"},
	{"socketio.ping_timeout", "4s", "4s"},
	{"socketio.max_payload", "2048", "2048"},
	{"socketio.connect_timeout", "3s", "3s"},
	{"socketio.max_unauthenticated", "0", "0"}, // 0 is unlimited
	{"socketio.max_unauthenticated_per_address", "7", "7"},
	{"socketio.max_client_packets", "4", "4"},
	{"socketio.recovery_secret", "recovery", "recovery"},
	{"socketio.relay", "message_created,message_deleted", "[message_created, message_deleted]"},
	{"socketio.relay_max_bytes", "1024", "1024"},
	{"socketio.relay_rate", "3", "3"},
	{"log.retention", "2h", "2h"},
	{"log.prune_interval", "30s", "30s"},
	{"listen.idle_check", "2s", "2s"},
	{"listen.reconnect_min", "50ms", "50ms"},
	{"listen.reconnect_max", "1s", "1s"},
	{"listen.page_size", "200", "200"},
	{"logging.level", "debug", "debug"},
	{"logging.format", "text", "text"},
	{"rules.file", "/etc/notifier/rules.yaml", "/etc/notifier/rules.yaml"},
	{"rules.dir", "/etc/notifier/migrations", "/etc/notifier/migrations"},
	{"snapshot.max_concurrent", "2", "2"},
	{"snapshot.max_queued", "0", "0"},
	{"snapshot.max_items", "500", "500"},
	{"snapshot.cursor_ttl", "5s", "5s"},
	{"fleet.advertise_url", "http://10.0.0.5:8080", "http://10.0.0.5:8080"},
	{"fleet.lease", "3s", "3s"},
	{"fleet.secret", fleetSecret, fleetSecret},
	{"watch.token", "a.dashboard.token", "a.dashboard.token"},
}

const fleetSecret = "fleet-secret-fleet-secret-fleet-secret"

var everyKeyConfig = config.Config{
	Database: config.Database{URL: "postgres://app@db.example:5432/clinic", MaxConns: 3, StatementTimeout: 0},
	HTTP: config.HTTP{
		Addr: "127.0.0.1:9000", InternalAddr: "127.0.0.1:9100", AllowedOrigins: []string{"https://a.example", "https://b.example"},
		ShutdownTimeout: 3 * time.Second, DrainDelay: 4 * time.Second, HandshakeTimeout: 4 * time.Second,
		ReadTimeout: 5 * time.Second, IdleTimeout: 6 * time.Second, MaxHeaderBytes: 8192,
		MaxConnections: 0, MaxConnectionsPerAccount: 5,
		TLSCert: "/etc/notifier/cert.pem", TLSKey: "/etc/notifier/key.pem",
	},
	Auth: config.Auth{Algorithm: "HS256", JWTSecret: secret, AccountClaim: "tenant", ES256LowS: true, Issuer: "https://id.example", Audience: "notifier",
		JWKSRefresh: 5 * time.Minute, JWKSMinRefresh: 10 * time.Second},
	Events: []string{"doctors.created"},
	Hub:    config.Hub{ReplayBuffer: 16, ReplayCache: 0, MaxLag: 5 * time.Second},
	WS:     config.WS{PingInterval: time.Second, PongWait: 2 * time.Second, WriteWait: 3 * time.Second, ReadLimit: 512, MaxClientMessages: 3},
	SocketIO: config.SocketIO{
		PingInterval: 5 * time.Second, PingTimeout: 4 * time.Second, MaxPayload: 2048, RecoverySecret: "recovery",
		ConnectTimeout: 3 * time.Second, MaxUnauthenticated: 0, MaxUnauthenticatedPerAddress: 7, MaxClientPackets: 4,
		Relay: []string{"message_created", "message_deleted"}, RelayMaxBytes: 1024, RelayRate: 3,
	},
	Log:      config.Log{Retention: 2 * time.Hour, PruneInterval: 30 * time.Second},
	Listen:   config.Listen{IdleCheck: 2 * time.Second, ReconnectMin: 50 * time.Millisecond, ReconnectMax: time.Second, PageSize: 200},
	Logging:  config.Logging{Level: "debug", Format: "text"},
	Rules:    config.Rules{File: "/etc/notifier/rules.yaml", Dir: "/etc/notifier/migrations"},
	Snapshot: config.Snapshot{MaxConcurrent: 2, MaxQueued: 0, MaxItems: 500, CursorTTL: 5 * time.Second},
	Fleet:    config.Fleet{AdvertiseURL: "http://10.0.0.5:8080", Lease: 3 * time.Second, Secret: fleetSecret},
	Watch:    config.Watch{Token: "a.dashboard.token"},
}

// TestEveryKeyCovered keeps everyKey in step with Config: a key without a default is
// ignored in the environment (spf13/viper #761), so each must be tried there.
func TestEveryKeyCovered(t *testing.T) {
	t.Parallel()
	var covered []string
	for _, k := range everyKey {
		covered = append(covered, k.key)
	}
	// Keys that exclude one another (the algorithm and its key source, a token and its
	// file) are covered by TestAuthKeys and TestWatchToken instead.
	covered = append(covered, "auth.algorithm", "auth.jwt_secret_file", "auth.public_key_file", "auth.jwks_url", "watch.token_file")
	want := keys(reflect.TypeFor[config.Config](), "")
	slices.Sort(want)
	slices.Sort(covered)
	if !slices.Equal(covered, want) {
		t.Errorf("keys tried = %v\nConfig keys = %v", covered, want)
	}
}

func TestEnvOverride(t *testing.T) {
	for _, k := range everyKey {
		t.Setenv(envName(k.key), k.env)
	}
	checkConfig(t, mustLoad(t, "", nil), everyKeyConfig)
}

func TestFile(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	section := ""
	for _, k := range everyKey {
		sec, name, nested := strings.Cut(k.key, ".")
		if !nested {
			b.WriteString(k.key + ": " + k.yaml + "\n")
			section = ""
			continue
		}
		if sec != section {
			b.WriteString(sec + ":\n")
			section = sec
		}
		b.WriteString("  " + name + ": " + k.yaml + "\n")
	}
	t.Logf("config file:\n%s", b.String())
	checkConfig(t, mustLoad(t, writeFile(t, b.String()), nil), everyKeyConfig)
}

func TestPrecedence(t *testing.T) {
	// defaults < file < environment < flags
	file := writeFile(t, "http:\n  addr: \":1001\"\nlogging:\n  level: warn\n")
	if got := mustLoad(t, file, flagSet(t)).HTTP.Addr; got != ":1001" {
		t.Errorf("file: http.addr = %q, want :1001", got)
	}
	t.Setenv("NOTIFIER_HTTP_ADDR", ":1002")
	c := mustLoad(t, file, flagSet(t))
	if c.HTTP.Addr != ":1002" {
		t.Errorf("file+env: http.addr = %q, want :1002", c.HTTP.Addr)
	}
	if c.Logging.Level != "warn" {
		t.Errorf("file+env: logging.level = %q, want warn from the file", c.Logging.Level)
	}
	c = mustLoad(t, file, flagSet(t, "--http-addr", ":1003", "--log-level", "error"))
	if c.HTTP.Addr != ":1003" || c.Logging.Level != "error" {
		t.Errorf("file+env+flags: http.addr = %q, logging.level = %q, want :1003 and error", c.HTTP.Addr, c.Logging.Level)
	}
	// Every flag reaches its key.
	secretFile, tokenFile := writeSecret(t, secret), writeSecret(t, "a.dashboard.token")
	t.Setenv("NOTIFIER_AUTH_JWT_SECRET_FILE", writeSecret(t, "from-env-from-env-from-env-from-env"))
	t.Setenv("NOTIFIER_WATCH_TOKEN_FILE", writeSecret(t, "from.env.token"))
	c = mustLoad(t, "", flagSet(t,
		"--database-url", "postgres://flag@h/db",
		"--http-addr", ":1004",
		"--jwt-secret-file", secretFile,
		"--log-level", "debug",
		"--log-format", "text",
		"--rules", "/r.yaml",
		"--dir", "/migrations",
		"--token-file", tokenFile))
	want := defaults()
	want.Database.URL = "postgres://flag@h/db"
	want.HTTP.Addr = ":1004"
	want.Auth.JWTSecret, want.Auth.JWTSecretFile = secret, secretFile
	want.Logging = config.Logging{Level: "debug", Format: "text"}
	want.Rules = config.Rules{File: "/r.yaml", Dir: "/migrations"}
	want.Watch = config.Watch{Token: "a.dashboard.token", TokenFile: tokenFile}
	checkConfig(t, c, want)
}

func TestEventsList(t *testing.T) {
	t.Setenv("NOTIFIER_EVENTS", " appointments.created ,doctors.created,")
	c := mustLoad(t, "", nil)
	if want := []string{"appointments.created", "doctors.created"}; !slices.Equal(c.Events, want) {
		t.Errorf("Events = %q, want %q", c.Events, want)
	}
}

func TestEventsListInFile(t *testing.T) {
	t.Parallel()
	for name, body := range map[string]string{
		"sequence": "events: [appointments.checkin, doctors.created]\n",
		"string":   "events: appointments.checkin,doctors.created\n",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c := mustLoad(t, writeFile(t, body), nil)
			if want := []string{"appointments.checkin", "doctors.created"}; !slices.Equal(c.Events, want) {
				t.Errorf("Events = %q, want %q", c.Events, want)
			}
		})
	}
}

// TestBadEventName: names are checked against the installed rules when the service
// starts (it needs the database); Load refuses what can never be an event name.
func TestBadEventName(t *testing.T) {
	t.Setenv("NOTIFIER_EVENTS", "appointments.created,appointments deleted")
	_, err := config.Load("", nil)
	checkInvalid(t, err, "events")
	if !strings.Contains(err.Error(), `"appointments deleted"`) {
		t.Errorf("error %q does not name the bad event", err)
	}
}

// checkInvalid checks that err is one line, wraps config.ErrInvalid and names key.
func checkInvalid(t *testing.T, err error, key string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one naming %s", key)
	}
	t.Logf("error: %v", err)
	if !errors.Is(err, config.ErrInvalid) {
		t.Errorf("error %q does not wrap ErrInvalid", err)
	}
	if !strings.Contains(err.Error(), key) {
		t.Errorf("error %q does not name %s", err, key)
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("error is not one line: %q", err)
	}
}

func TestValidationFromEnv(t *testing.T) {
	for _, tc := range []struct{ key, value string }{
		{"database.max_conns", "1"},
		{"database.max_conns", "abc"},
		{"database.url", "postgres://app:se%zzret@db/clinic"},
		{"database.statement_timeout", "-1s"},
		{"database.statement_timeout", "ten"},
		{"http.shutdown_timeout", "0"},
		{"ws.ping_interval", "25"},      // 25ns: no unit
		{"socketio.ping_interval", "5"}, // 5ns
		{"http.shutdown_timeout", "-1s"},
		{"http.handshake_timeout", "0s"},
		{"http.read_timeout", "9s"}, // shorter than the default handshake timeout
		{"http.read_timeout", "soon"},
		{"http.idle_timeout", "0s"},
		{"http.max_header_bytes", "4095"},
		{"socketio.connect_timeout", "0s"},
		{"socketio.connect_timeout", "-1s"},
		{"socketio.max_unauthenticated", "-1"},
		{"socketio.max_unauthenticated_per_address", "-1"},
		{"socketio.max_client_packets", "0"},
		{"http.max_connections", "-1"},
		{"http.max_connections_per_account", "-1"},
		{"http.tls_cert", "/etc/notifier/cert.pem"}, // without http.tls_key
		{"ws.max_client_messages", "0"},
		{"events", "orders created"},
		{"hub.max_lag", "0"},
		{"hub.max_lag", "999ms"},
		{"hub.max_lag", "soon"},
		{"hub.replay_buffer", "0"},
		{"ws.ping_interval", "0s"},
		{"ws.pong_wait", "25s"}, // not longer than the default ping interval
		{"ws.write_wait", "0s"},
		{"ws.read_limit", "127"},
		{"ws.read_limit", "1e3"},
		{"log.retention", "59s"},
		{"log.prune_interval", "0s"},
		{"logging.level", "verbose"},
		{"logging.format", "xml"},
		{"http.internal_addr", ":8080"}, // the same as http.addr
		{"listen.idle_check", "99ms"},
		{"listen.idle_check", "5"}, // 5ns
		{"listen.reconnect_min", "0s"},
		{"listen.reconnect_max", "50ms"}, // below the default reconnect_min
		{"listen.page_size", "0"},
		{"listen.page_size", "100001"},
	} {
		t.Run(tc.key+"="+tc.value, func(t *testing.T) {
			t.Setenv(envName(tc.key), tc.value)
			_, err := config.Load("", nil)
			checkInvalid(t, err, tc.key)
			if tc.key == "database.url" && strings.Contains(err.Error(), "se%zzret") {
				t.Errorf("error %q echoes the password", err)
			}
		})
	}
}

func TestValidationFromFile(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ key, yaml string }{
		{"auth.account_claim", "auth:\n  account_claim: \"\"\n"},
		{"hub.max_lag", "hub:\n  max_lag: 0s\n"},
		{"ws.ping_interval", "ws:\n  ping_interval: 25\n"}, // no unit: 25ns
		{"hub.max_lag", "hub:\n  max_lag: [1s]\n"},
		{"ws.pong_wait", "ws:\n  ping_interval: 1m\n  pong_wait: 30s\n"},
		{"events", "events: [\"a b\"]\n"},
		{"database.max_conns", "database:\n  max_conns: many\n"},
		{"logging.level", "logging:\n  level: \"\"\n"},
		{"http.tls_key", "http:\n  tls_key: /etc/notifier/key.pem\n"}, // without http.tls_cert
		{"http.read_timeout", "http:\n  handshake_timeout: 20s\n  read_timeout: 19s\n"},
	} {
		t.Run(tc.key, func(t *testing.T) {
			t.Parallel()
			_, err := config.Load(writeFile(t, tc.yaml), nil)
			checkInvalid(t, err, tc.key)
		})
	}
}

func TestBadFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("hub: [\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, path := range map[string]string{
		"missing":     filepath.Join(dir, "missing.yaml"),
		"not yaml":    bad,
		"unknown ext": filepath.Join(dir, "notifier.conf"),
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := config.Load(path, nil)
			checkInvalid(t, err, path)
		})
	}
}

func TestRequire(t *testing.T) {
	t.Parallel()
	c := mustLoad(t, "", nil)
	checkInvalid(t, c.RequireDatabase(), "database.url")
	checkInvalid(t, c.RequireSecret(), "auth.jwt_secret")

	c.Auth.JWTSecret = "short-secret-31-bytes-long-xxxxx"[:31]
	err := c.RequireSecret()
	checkInvalid(t, err, "auth.jwt_secret")
	if strings.Contains(err.Error(), c.Auth.JWTSecret) {
		t.Errorf("error %q echoes the secret", err)
	}

	c.Database.URL = "postgres://app@db/clinic"
	c.Auth.JWTSecret = secret
	if err := c.RequireDatabase(); err != nil {
		t.Errorf("RequireDatabase with a URL: %v", err)
	}
	if err := c.RequireSecret(); err != nil {
		t.Errorf("RequireSecret with 32 bytes: %v", err)
	}
}

// TestAuthKeys: the algorithm is pinned by configuration with exactly one key source.
func TestAuthKeys(t *testing.T) {
	t.Parallel()
	secretFile := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secretFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, yaml, badKey string
		check              func(config.Config) bool
	}{
		{"rs256 key file", "auth:\n  algorithm: RS256\n  public_key_file: /etc/notifier/jwt.pem\n", "",
			func(c config.Config) bool {
				return c.Auth.Algorithm == "RS256" && c.Auth.PublicKeyFile == "/etc/notifier/jwt.pem"
			}},
		{"es256 jwks", "auth:\n  algorithm: ES256\n  jwks_url: https://issuer.example/jwks.json\n", "",
			func(c config.Config) bool { return c.Auth.JWKSURL == "https://issuer.example/jwks.json" }},
		{"secret file", "auth:\n  jwt_secret_file: " + secretFile + "\n", "",
			func(c config.Config) bool { return c.Auth.JWTSecret == secret && c.RequireSecret() == nil }},
		{"unknown algorithm", "auth:\n  algorithm: HS512\n", "auth.algorithm", nil},
		{"none", "auth:\n  algorithm: none\n", "auth.algorithm", nil},
		{"rs256 with a secret", "auth:\n  algorithm: RS256\n  jwt_secret: " + secret + "\n  public_key_file: /k.pem\n", "auth.algorithm", nil},
		{"hs256 with a key", "auth:\n  public_key_file: /k.pem\n", "auth.algorithm", nil},
		{"both key sources", "auth:\n  algorithm: RS256\n  public_key_file: /k.pem\n  jwks_url: https://i.example/j\n", "auth.jwks_url", nil},
		{"both secrets", "auth:\n  jwt_secret: " + secret + "\n  jwt_secret_file: " + secretFile + "\n", "auth.jwt_secret_file", nil},
		{"missing secret file", "auth:\n  jwt_secret_file: /nonexistent/secret\n", "auth.jwt_secret_file", nil},
		{"min refresh above refresh", "auth:\n  jwks_refresh: 1m\n  jwks_min_refresh: 2m\n", "auth.jwks_min_refresh", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := config.Load(writeFile(t, tc.yaml), nil)
			if tc.badKey != "" {
				checkInvalid(t, err, tc.badKey)
				return
			}
			if err != nil || !tc.check(c) {
				t.Fatalf("Load = %+v, %v", c.Auth, err)
			}
		})
	}
	// RS256 needs a key source to verify, and cannot mint.
	c, err := config.Load(writeFile(t, "auth:\n  algorithm: RS256\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	checkInvalid(t, c.RequireVerifier(), "auth.public_key_file")
	checkInvalid(t, c.RequireSecret(), "auth.algorithm")
}

// TestUnknownFileKey: a misspelt key in the file is a one-line error naming it, not a
// setting silently left at its default.
func TestUnknownFileKey(t *testing.T) {
	t.Parallel()
	for body, says := range map[string]string{
		"http:\n  adr: \":9000\"\n": `unknown key "http.adr" (did you mean http.addr?)`,
		"loggin:\n  level: debug\n": `unknown key "loggin.level" (did you mean logging.level?)`,
		"events_allow: [a]\n":       `unknown key "events_allow"`,
		"hub:\n  room_prefix: r.\n": `key "hub.room_prefix" was removed: it only named rooms in debug log lines; delete it`,
	} {
		_, err := config.Load(writeFile(t, body), nil)
		if !errors.Is(err, config.ErrInvalid) || !strings.HasSuffix(err.Error(), says) || strings.Contains(err.Error(), "\n") {
			t.Errorf("file %q: error %v, want one line ending %s", body, err, says)
		}
	}
}

// TestUnknownEnvKey: a NOTIFIER_* variable that names no key is a one-line error
// naming it (with the key it is nearest to, if any), not a setting silently left at
// its default; keys with underscores of their own are matched whole.
func TestUnknownEnvKey(t *testing.T) {
	t.Setenv("NOTIFIER_HTTP_MAX_CONNECTIONS_PER_ACCOUNT", "7")
	t.Setenv("NOTIFIER_SOCKETIO_MAX_UNAUTHENTICATED_PER_ADDRESS", "8")
	if c := mustLoad(t, "", nil); c.HTTP.MaxConnectionsPerAccount != 7 || c.SocketIO.MaxUnauthenticatedPerAddress != 8 {
		t.Fatalf("keys with underscores: %+v, %+v", c.HTTP, c.SocketIO)
	}
	for _, tc := range []struct{ name, want string }{
		{"NOTIFIER_HTTP_ADR", "invalid configuration: environment NOTIFIER_HTTP_ADR: unknown key (did you mean NOTIFIER_HTTP_ADDR?)"},
		{"NOTIFIER_HTTP_MAX_CONNECTIONS_PER_ACCOUNTS", "invalid configuration: environment NOTIFIER_HTTP_MAX_CONNECTIONS_PER_ACCOUNTS: unknown key (did you mean NOTIFIER_HTTP_MAX_CONNECTIONS_PER_ACCOUNT?)"},
		{"NOTIFIER_HTTP", "invalid configuration: environment NOTIFIER_HTTP: unknown key"},
		{"NOTIFIER_FLEET_COST", "invalid configuration: environment NOTIFIER_FLEET_COST: unknown key"},
		{"NOTIFIER_JWT_SECRET", "invalid configuration: environment NOTIFIER_JWT_SECRET: unknown key"},
		{"NOTIFIER_HUB_ROOM_PREFIX", "invalid configuration: environment NOTIFIER_HUB_ROOM_PREFIX: key hub.room_prefix was removed: it only named rooms in debug log lines; delete it"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(tc.name, "") // empty is set too
			_, err := config.Load("", nil)
			if !errors.Is(err, config.ErrInvalid) || err.Error() != tc.want {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
}

// TestTestEnvIgnored: NOTIFIER_TEST_* belongs to the tests, never to the notifier.
func TestTestEnvIgnored(t *testing.T) {
	t.Setenv("NOTIFIER_TEST_DATABASE_URL", "postgres://test@h/db")
	t.Setenv("NOTIFIER_TEST_HTTP_ADDR", ":1")
	checkConfig(t, mustLoad(t, "", nil), defaults())
}

// TestRemovedSecretFlags: no flag carries a secret; the ones that did are refused in
// one line saying where the secret goes now, without echoing anything.
func TestRemovedSecretFlags(t *testing.T) {
	t.Parallel()
	for name, key := range config.Flags {
		if (strings.Contains(key, "secret") && !strings.HasSuffix(key, "_file")) || key == "watch.token" {
			t.Errorf("flag --%s carries the secret %s", name, key)
		}
	}
	for name, says := range map[string]string{"jwt-secret": "NOTIFIER_AUTH_JWT_SECRET", "token": "NOTIFIER_WATCH_TOKEN"} {
		if _, ok := config.Flags[name]; ok {
			t.Errorf("--%s is still a flag", name)
		}
		err := config.RemovedFlag(name)
		checkInvalid(t, err, "--"+name)
		if !strings.Contains(err.Error(), says) || !strings.Contains(err.Error(), "file") {
			t.Errorf("error %q does not point to %s or a file", err, says)
		}
	}
	if err := config.RemovedFlag("http-addr"); err != nil {
		t.Errorf("RemovedFlag(http-addr) = %v, want nil", err)
	}
}

// TestWatchToken: watch's token comes from watch.token or the file watch.token_file
// names, never both.
func TestWatchToken(t *testing.T) {
	t.Parallel()
	tokenFile := writeSecret(t, "a.dashboard.token")
	c := mustLoad(t, writeFile(t, "watch:\n  token_file: "+tokenFile+"\n"), nil)
	if c.Watch.Token != "a.dashboard.token" {
		t.Errorf("token from the file = %q", c.Watch.Token)
	}
	_, err := config.Load(writeFile(t, "watch:\n  token: t\n  token_file: "+tokenFile+"\n"), nil)
	checkInvalid(t, err, "watch.token_file")
	_, err = config.Load(writeFile(t, "watch:\n  token_file: /nonexistent/token\n"), nil)
	checkInvalid(t, err, "watch.token_file")
}

// TestRequireServe: serve with nothing set names every missing setting at once.
func TestRequireServe(t *testing.T) {
	t.Parallel()
	c := mustLoad(t, "", nil)
	err := c.RequireServe()
	if !errors.Is(err, config.ErrInvalid) || !strings.Contains(err.Error(), "database.url") || !strings.Contains(err.Error(), "auth.jwt_secret") || strings.Count(err.Error(), "invalid configuration") != 1 {
		t.Fatalf("RequireServe() = %v, want one line naming database.url and auth.jwt_secret", err)
	}
	c.Database.URL, c.Auth.JWTSecret = "postgres://x", secret
	if err := c.RequireServe(); err != nil {
		t.Fatalf("RequireServe() with both set = %v", err)
	}
}

// TestFleetValidation: a fleet needs a base URL the others can reach, a lease of a
// second or more, and a key: fleet.secret, or an HS256 secret to derive it from.
func TestFleetValidation(t *testing.T) {
	for _, tc := range []struct {
		key string
		env map[string]string
	}{
		{"fleet.advertise_url", map[string]string{"fleet.advertise_url": "10.0.0.5:8080"}},
		{"fleet.advertise_url", map[string]string{"fleet.advertise_url": "ws://10.0.0.5:8080"}},
		{"fleet.advertise_url", map[string]string{"fleet.advertise_url": "http://10.0.0.5:8080/notifier"}},
		{"fleet.advertise_url", map[string]string{"fleet.advertise_url": "http://user:pw@10.0.0.5:8080"}},
		{"fleet.advertise_url", map[string]string{"fleet.advertise_url": "http://"}},
		{"fleet.lease", map[string]string{"fleet.advertise_url": "http://a:1", "fleet.lease": "999ms"}},
		{"fleet.lease", map[string]string{"fleet.lease": "5"}}, // 5ns, even without a fleet
		{"fleet.secret", map[string]string{"fleet.advertise_url": "http://a:1", "fleet.secret": "short"}},
		{"fleet.secret", map[string]string{"fleet.advertise_url": "http://a:1", "auth.algorithm": "RS256"}},
	} {
		t.Run(fmt.Sprint(tc.env), func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(envName(k), v)
			}
			_, err := config.Load("", nil)
			checkInvalid(t, err, tc.key)
		})
	}
	t.Setenv(envName("fleet.advertise_url"), "https://notifier-2.internal:8443/")
	if c, err := config.Load("", nil); err != nil || c.Fleet.AdvertiseURL != "https://notifier-2.internal:8443/" {
		t.Errorf("a good fleet: %+v, %v", c.Fleet, err)
	}
}
