// Package config loads the notifier's configuration from defaults, an optional YAML
// file, NOTIFIER_* environment variables and command-line flags, in rising order of
// precedence. It is the only package that imports viper.
package config

import (
	"errors"
	"fmt"
	"maps"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/pgnotifier/notifier/internal/auth"
)

// Config is everything the notifier can be told.
type Config struct {
	Database Database `mapstructure:"database"`
	HTTP     HTTP     `mapstructure:"http"`
	Auth     Auth     `mapstructure:"auth"`
	Events   []string `mapstructure:"events"` // allowlist of event names sent to clients; empty: every installed event
	Hub      Hub      `mapstructure:"hub"`
	WS       WS       `mapstructure:"ws"`
	SocketIO SocketIO `mapstructure:"socketio"`
	Log      Log      `mapstructure:"log"`
	Listen   Listen   `mapstructure:"listen"`
	Logging  Logging  `mapstructure:"logging"`
	Rules    Rules    `mapstructure:"rules"`
	Snapshot Snapshot `mapstructure:"snapshot"`
	Fleet    Fleet    `mapstructure:"fleet"`
	Watch    Watch    `mapstructure:"watch"`
}

// Watch is what `notifier watch` connects with, unless it mints tokens (--account).
type Watch struct {
	Token     string `mapstructure:"token"`      // a dashboard token; after Load, also what token_file held
	TokenFile string `mapstructure:"token_file"` // the token in a file (not writable by others)
}

// Fleet makes instances that share a database enrich each event once: one leads,
// the others stream from it (docs/scaling.md).
type Fleet struct {
	// AdvertiseURL is where the other instances reach this one (http://10.0.0.5:8080);
	// "" runs without a fleet: the instance reads and enriches the log itself.
	AdvertiseURL string        `mapstructure:"advertise_url"`
	Lease        time.Duration `mapstructure:"lease"`  // how long a leader's renewal holds
	Secret       string        `mapstructure:"secret"` // the fleet key; default: derived from the HS256 secret
}

// Snapshot bounds GET /v1/snapshot/{list}.
type Snapshot struct {
	MaxConcurrent int           `mapstructure:"max_concurrent"` // snapshot transactions at once
	MaxQueued     int           `mapstructure:"max_queued"`     // waiting beyond that (503 beyond)
	MaxItems      int           `mapstructure:"max_items"`      // rows one snapshot may hold
	CursorTTL     time.Duration `mapstructure:"cursor_ttl"`     // how long later pages wait
}

// Rules says where a DBA's rule file and its generated migrations are.
type Rules struct {
	File string `mapstructure:"file"` // the rule file `notifier rules sql` reads
	Dir  string `mapstructure:"dir"`  // its migrations: `rules sql` writes them, `migrate` applies them with the built-in ones
}

// Database says where the clinic's PostgreSQL is.
type Database struct {
	URL              string        `mapstructure:"url"`
	MaxConns         int32         `mapstructure:"max_conns"`
	StatementTimeout time.Duration `mapstructure:"statement_timeout"`
}

// HTTP configures the server.
type HTTP struct {
	Addr                     string        `mapstructure:"addr"`
	InternalAddr             string        `mapstructure:"internal_addr"` // "" serves /metrics on Addr; else only here
	AllowedOrigins           []string      `mapstructure:"allowed_origins"`
	ShutdownTimeout          time.Duration `mapstructure:"shutdown_timeout"`
	DrainDelay               time.Duration `mapstructure:"drain_delay"`       // on SIGTERM: not ready, still serving, this long
	HandshakeTimeout         time.Duration `mapstructure:"handshake_timeout"` // request headers, and the WebSocket handshake
	ReadTimeout              time.Duration `mapstructure:"read_timeout"`      // a whole request, body included (not upgraded connections)
	IdleTimeout              time.Duration `mapstructure:"idle_timeout"`      // a keep-alive connection between requests
	MaxHeaderBytes           int           `mapstructure:"max_header_bytes"`  // request line and headers
	MaxConnections           int           `mapstructure:"max_connections"`   // open TCP connections, WebSockets included
	MaxConnectionsPerAccount int           `mapstructure:"max_connections_per_account"`
	TLSCert                  string        `mapstructure:"tls_cert"`
	TLSKey                   string        `mapstructure:"tls_key"`
}

// Auth configures token verification.
type Auth struct {
	Algorithm      string        `mapstructure:"algorithm"`       // HS256, RS256 or ES256: never taken from a token
	JWTSecret      string        `mapstructure:"jwt_secret"`      // HS256; after Load, also what jwt_secret_file held
	JWTSecretFile  string        `mapstructure:"jwt_secret_file"` // HS256 secret in a file (not writable by others)
	PublicKeyFile  string        `mapstructure:"public_key_file"` // RS256/ES256: PEM public key or certificate
	JWKSURL        string        `mapstructure:"jwks_url"`        // RS256/ES256: key set chosen by kid
	JWKSRefresh    time.Duration `mapstructure:"jwks_refresh"`
	JWKSMinRefresh time.Duration `mapstructure:"jwks_min_refresh"`
	AccountClaim   string        `mapstructure:"account_claim"`
	ES256LowS      bool          `mapstructure:"es256_low_s"` // refuse high-S ES256 signatures (auth.Config.RequireLowS)
	Issuer         string        `mapstructure:"issuer"`      // the one iss tokens may carry; "" checks none
	Audience       string        `mapstructure:"audience"`    // must be among the tokens' aud; "" checks none
}

// Hub configures rooms and per-connection queues.
type Hub struct {
	ReplayBuffer int           `mapstructure:"replay_buffer"`
	ReplayCache  int           `mapstructure:"replay_cache"`
	MaxLag       time.Duration `mapstructure:"max_lag"`
}

// WS configures WebSocket keep-alive and limits.
type WS struct {
	PingInterval      time.Duration `mapstructure:"ping_interval"`
	PongWait          time.Duration `mapstructure:"pong_wait"`
	WriteWait         time.Duration `mapstructure:"write_wait"`
	ReadLimit         int64         `mapstructure:"read_limit"`
	MaxClientMessages int           `mapstructure:"max_client_messages"`
}

// SocketIO configures the Engine.IO / Socket.IO endpoint at /socket.io/.
type SocketIO struct {
	PingInterval time.Duration `mapstructure:"ping_interval"`
	PingTimeout  time.Duration `mapstructure:"ping_timeout"`
	MaxPayload   int           `mapstructure:"max_payload"`
	// ConnectTimeout bounds the time from the handshake to an accepted CONNECT.
	ConnectTimeout time.Duration `mapstructure:"connect_timeout"`
	// MaxUnauthenticated and MaxUnauthenticatedPerAddress cap sessions without a
	// connected socket, in all and per client address; 0 is no cap.
	MaxUnauthenticated           int `mapstructure:"max_unauthenticated"`
	MaxUnauthenticatedPerAddress int `mapstructure:"max_unauthenticated_per_address"`
	// MaxClientPackets is how many packets per second (and in a burst) a client may
	// send before its session is closed.
	MaxClientPackets int `mapstructure:"max_client_packets"`
	// RecoverySecret keys the connection-state-recovery ids; instances behind one
	// load balancer need the same. Default: the HS256 secret (a random one otherwise).
	RecoverySecret string `mapstructure:"recovery_secret"`
	// Relay lists the events clients may emit for the other clients of their account
	// (seed 003), through the event log; empty: relay is off. RelayMaxBytes bounds an
	// emit's JSON arguments, RelayRate the relayed emits a second per connection (twice
	// that in a burst).
	Relay         []string `mapstructure:"relay"`
	RelayMaxBytes int      `mapstructure:"relay_max_bytes"`
	RelayRate     int      `mapstructure:"relay_rate"`
}

// Log configures the event log's retention.
type Log struct {
	Retention     time.Duration `mapstructure:"retention"`
	PruneInterval time.Duration `mapstructure:"prune_interval"`
}

// Listen configures the LISTEN connection that follows the event log.
type Listen struct {
	// IdleCheck is how long the listener waits for a notification before it reads the
	// log anyway (and so checks the connection): the most a lost wake-up can delay.
	IdleCheck    time.Duration `mapstructure:"idle_check"`
	ReconnectMin time.Duration `mapstructure:"reconnect_min"` // first delay after the connection is lost
	ReconnectMax time.Duration `mapstructure:"reconnect_max"` // the delay doubles up to this
	PageSize     int           `mapstructure:"page_size"`     // log rows per catch-up query
}

// Logging configures the process's own logs.
type Logging struct {
	Level  string `mapstructure:"level"`
	Format string `mapstructure:"format"`
}

// defaults has a value for every key: viper's Unmarshal ignores environment variables
// for keys it has never heard of.
var defaults = map[string]any{
	"database.url":                             "",
	"database.max_conns":                       int32(8),
	"database.statement_timeout":               10 * time.Second,
	"http.addr":                                ":8080",
	"http.internal_addr":                       "",
	"http.allowed_origins":                     []string{},
	"http.drain_delay":                         time.Duration(0),
	"http.shutdown_timeout":                    10 * time.Second,
	"http.handshake_timeout":                   10 * time.Second,
	"http.read_timeout":                        15 * time.Second,
	"http.idle_timeout":                        30 * time.Second,
	"http.max_header_bytes":                    16 << 10,
	"http.max_connections":                     10000,
	"http.max_connections_per_account":         1000,
	"http.tls_cert":                            "",
	"http.tls_key":                             "",
	"auth.jwt_secret":                          "",
	"auth.algorithm":                           "HS256",
	"auth.jwt_secret_file":                     "",
	"auth.public_key_file":                     "",
	"auth.jwks_url":                            "",
	"auth.jwks_refresh":                        10 * time.Minute,
	"auth.jwks_min_refresh":                    30 * time.Second,
	"auth.account_claim":                       "accountId",
	"auth.es256_low_s":                         false,
	"auth.issuer":                              "",
	"auth.audience":                            "",
	"events":                                   []string{},
	"hub.max_lag":                              30 * time.Second,
	"hub.replay_buffer":                        1024,
	"hub.replay_cache":                         8192,
	"ws.ping_interval":                         25 * time.Second,
	"ws.pong_wait":                             60 * time.Second,
	"ws.write_wait":                            10 * time.Second,
	"ws.read_limit":                            int64(4096),
	"ws.max_client_messages":                   10,
	"socketio.ping_interval":                   25 * time.Second,
	"socketio.ping_timeout":                    20 * time.Second,
	"socketio.max_payload":                     1000000,
	"socketio.connect_timeout":                 10 * time.Second,
	"socketio.max_unauthenticated":             1000,
	"socketio.max_unauthenticated_per_address": 50,
	"socketio.max_client_packets":              10,
	"socketio.recovery_secret":                 "",
	"socketio.relay":                           []string{},
	"socketio.relay_max_bytes":                 16384,
	"socketio.relay_rate":                      10,
	"log.retention":                            24 * time.Hour,
	"log.prune_interval":                       time.Minute,
	"listen.idle_check":                        5 * time.Second,
	"listen.reconnect_min":                     100 * time.Millisecond,
	"listen.reconnect_max":                     5 * time.Second,
	"listen.page_size":                         1000,
	"logging.level":                            "info",
	"logging.format":                           "json",
	"rules.file":                               "",
	"snapshot.max_concurrent":                  4,
	"snapshot.max_queued":                      64,
	"snapshot.max_items":                       10000,
	"snapshot.cursor_ttl":                      time.Minute,
	"rules.dir":                                "",
	"fleet.advertise_url":                      "",
	"fleet.lease":                              5 * time.Second,
	"fleet.secret":                             "",
	"watch.token":                              "",
	"watch.token_file":                         "",
}

// Flags maps command-line flag names to configuration keys; Load reads each flag that
// exists in the flag set it is given and was set. No secret is among them: a command
// line shows in ps and in shell history (RemovedFlag).
var Flags = map[string]string{
	"database-url":    "database.url",
	"http-addr":       "http.addr",
	"jwt-secret-file": "auth.jwt_secret_file",
	"log-level":       "logging.level",
	"log-format":      "logging.format",
	"rules":           "rules.file",
	"dir":             "rules.dir",
	"token-file":      "watch.token_file",
}

// RemovedFlag returns the error for a flag that once carried a secret (--jwt-secret,
// watch's --token), saying where the secret goes now; nil for any other name.
func RemovedFlag(name string) error {
	var instead string
	switch name {
	case "jwt-secret":
		instead = "NOTIFIER_AUTH_JWT_SECRET, auth.jwt_secret_file (--jwt-secret-file) or the config file"
	case "token":
		instead = "NOTIFIER_WATCH_TOKEN or watch.token_file (--token-file)"
	default:
		return nil
	}
	return fmt.Errorf("%w: --%s: a secret is not taken on the command line, which ps and shell history show: use %s", ErrInvalid, name, instead)
}

// envPrefix starts the environment variable of every key (NOTIFIER_HTTP_ADDR for
// http.addr); testEnvPrefix starts the tests' own variables, which Load ignores.
const (
	envPrefix     = "NOTIFIER_"
	testEnvPrefix = "NOTIFIER_TEST_"
)

// envName is the environment variable of key.
func envName(key string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// unknownEnv refuses a NOTIFIER_* variable of environ that names no key (a misspelt
// NOTIFIER_HTTP_ADR would otherwise leave http.addr at its default without a word),
// NOTIFIER_TEST_* aside. Names are matched whole: keys contain underscores too.
func unknownEnv(environ []string) error {
	known := make([]string, 0, len(defaults))
	for k := range defaults {
		known = append(known, envName(k))
	}
	slices.Sort(known)
	var unknown []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, envPrefix) && !strings.HasPrefix(name, testEnvPrefix) {
			if _, found := slices.BinarySearch(known, name); !found {
				for k, why := range removed {
					if envName(k) == name {
						return fmt.Errorf("%w: environment %s: key %s was removed: %s", ErrInvalid, name, k, why)
					}
				}
				unknown = append(unknown, name)
			}
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	slices.Sort(unknown)
	return fmt.Errorf("%w: environment %s: unknown key%s", ErrInvalid, unknown[0], suggest(unknown[0], known))
}

// removed names keys that existed once, with what to do instead: a file that still
// sets one gets that, not a bare "unknown key".
var removed = map[string]string{
	"hub.room_prefix": "it only named rooms in debug log lines; delete it",
}

// unknownKeys refuses a key of the file that no setting has (a misspelt http.adr would
// otherwise leave http.addr at its default without a word).
func unknownKeys(file string) error {
	fv := viper.New()
	fv.SetConfigFile(file)
	if err := fv.ReadInConfig(); err != nil {
		return fmt.Errorf("%w: config file %s: %v", ErrInvalid, file, err)
	}
	keys := fv.AllKeys()
	slices.Sort(keys)
	for _, k := range keys {
		if why, ok := removed[k]; ok {
			return fmt.Errorf("%w: config file %s: key %q was removed: %s", ErrInvalid, file, k, why)
		}
		if _, ok := defaults[k]; !ok {
			return fmt.Errorf("%w: config file %s: unknown key %q%s", ErrInvalid, file, k, suggest(k, slices.Sorted(maps.Keys(defaults))))
		}
	}
	return nil
}

// suggest returns " (did you mean K?)" for the first of the sorted names nearest to
// name, if one is a few edits away; else "".
func suggest(name string, names []string) string {
	best, bestDist := "", 3 // more edits than this is another word
	for _, n := range names {
		if d := editDistance(name, n); d < bestDist {
			best, bestDist = n, d
		}
	}
	if best == "" {
		return ""
	}
	return " (did you mean " + best + "?)"
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	prev, cur := make([]int, len(b)+1), make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// eventName is the syntax of event names (internal/rules makes the same demand).
var eventName = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,99}$`)

// ErrInvalid is wrapped by every configuration error.
var ErrInvalid = errors.New("invalid configuration")

// Load reads the configuration: defaults, then file (if not empty), then NOTIFIER_*
// environment variables (NOTIFIER_HTTP_ADDR for http.addr), then flags. A NOTIFIER_*
// variable that names no key is an error; NOTIFIER_TEST_* is left to the tests.
func Load(file string, flags *pflag.FlagSet) (Config, error) {
	if err := unknownEnv(os.Environ()); err != nil {
		return Config{}, err
	}
	v := viper.New()
	for k, val := range defaults {
		v.SetDefault(k, val)
	}
	v.SetEnvPrefix(strings.TrimSuffix(envPrefix, "_"))
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AutomaticEnv()
	if file != "" {
		v.SetConfigFile(file)
		if err := v.ReadInConfig(); err != nil {
			return Config{}, fmt.Errorf("%w: config file %s: %v", ErrInvalid, file, err)
		}
		if err := unknownKeys(file); err != nil {
			return Config{}, err
		}
	}
	if flags != nil {
		for name, key := range Flags {
			if f := flags.Lookup(name); f != nil {
				if err := v.BindPFlag(key, f); err != nil {
					return Config{}, fmt.Errorf("bind flag --%s: %w", name, err)
				}
			}
		}
	}
	var c Config
	if err := v.Unmarshal(&c); err != nil {
		// mapstructure reports "decoding failed due to the following error(s):\n\n'key'
		// ..."; bad config gets one line naming the key. The interface matches its
		// *DecodeError without importing mapstructure.
		var de interface {
			Name() string
			Unwrap() error
		}
		if errors.As(err, &de) {
			return Config{}, invalid(de.Name(), "%v", de.Unwrap())
		}
		return Config{}, fmt.Errorf("%w: %s", ErrInvalid, strings.Join(strings.Fields(err.Error()), " "))
	}
	// A comma-separated environment variable arrives as one element.
	c.Events = splitList(c.Events)
	c.SocketIO.Relay = splitList(c.SocketIO.Relay)
	c.HTTP.AllowedOrigins = splitList(c.HTTP.AllowedOrigins)
	if err := c.validateCommon(); err != nil {
		return Config{}, err
	}
	if c.Auth.JWTSecretFile != "" {
		secret, err := auth.ReadSecret(c.Auth.JWTSecret, c.Auth.JWTSecretFile)
		if err != nil {
			return Config{}, invalid("auth.jwt_secret_file", "%v", err)
		}
		c.Auth.JWTSecret = string(secret)
	}
	if c.Watch.TokenFile != "" {
		token, err := auth.ReadSecret(c.Watch.Token, c.Watch.TokenFile)
		if err != nil {
			return Config{}, invalid("watch.token_file", "%v", err)
		}
		c.Watch.Token = string(token)
	}
	return c, nil
}

func splitList(in []string) []string {
	var out []string
	for _, s := range in {
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

func invalid(key, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrInvalid, key, fmt.Sprintf(format, args...))
}

func (c *Config) validateCommon() error {
	for _, e := range c.Events {
		if !eventName.MatchString(e) {
			return invalid("events", "%q is not an event name (the service checks names against the installed rules when it starts)", e)
		}
	}
	for _, e := range c.SocketIO.Relay {
		if !eventName.MatchString(e) {
			return invalid("socketio.relay", "%q is not an event name", e)
		}
	}
	// A number without a unit reads as nanoseconds (ws.ping_interval: 25 would ping in
	// a busy loop): nothing here is meant below a millisecond.
	for _, d := range []struct {
		key string
		v   time.Duration
	}{
		{"database.statement_timeout", c.Database.StatementTimeout},
		{"http.shutdown_timeout", c.HTTP.ShutdownTimeout}, {"http.drain_delay", c.HTTP.DrainDelay},
		{"http.handshake_timeout", c.HTTP.HandshakeTimeout}, {"http.read_timeout", c.HTTP.ReadTimeout},
		{"http.idle_timeout", c.HTTP.IdleTimeout},
		{"auth.jwks_refresh", c.Auth.JWKSRefresh}, {"auth.jwks_min_refresh", c.Auth.JWKSMinRefresh},
		{"hub.max_lag", c.Hub.MaxLag},
		{"ws.ping_interval", c.WS.PingInterval}, {"ws.pong_wait", c.WS.PongWait}, {"ws.write_wait", c.WS.WriteWait},
		{"socketio.ping_interval", c.SocketIO.PingInterval}, {"socketio.ping_timeout", c.SocketIO.PingTimeout},
		{"socketio.connect_timeout", c.SocketIO.ConnectTimeout},
		{"log.retention", c.Log.Retention}, {"log.prune_interval", c.Log.PruneInterval},
		{"snapshot.cursor_ttl", c.Snapshot.CursorTTL}, {"fleet.lease", c.Fleet.Lease},
		{"listen.idle_check", c.Listen.IdleCheck},
		{"listen.reconnect_min", c.Listen.ReconnectMin}, {"listen.reconnect_max", c.Listen.ReconnectMax},
	} {
		if d.v > 0 && d.v < time.Millisecond {
			return invalid(d.key, "%s is below a millisecond: a duration needs a unit (e.g. %ds)", d.v, int64(d.v))
		}
	}
	if c.HTTP.DrainDelay < 0 {
		return invalid("http.drain_delay", "must not be negative, got %s", c.HTTP.DrainDelay)
	}
	switch {
	case c.Database.MaxConns < 2:
		return invalid("database.max_conns", "must be at least 2, got %d", c.Database.MaxConns)
	case c.Database.StatementTimeout < 0:
		return invalid("database.statement_timeout", "must not be negative (0 disables it)")
	case c.HTTP.ShutdownTimeout <= 0:
		return invalid("http.shutdown_timeout", "must be positive")
	case c.HTTP.HandshakeTimeout <= 0:
		return invalid("http.handshake_timeout", "must be positive")
	case c.HTTP.ReadTimeout < c.HTTP.HandshakeTimeout:
		return invalid("http.read_timeout", "must be at least http.handshake_timeout (%s), got %s", c.HTTP.HandshakeTimeout, c.HTTP.ReadTimeout)
	case c.HTTP.IdleTimeout <= 0:
		return invalid("http.idle_timeout", "must be positive")
	case c.HTTP.MaxHeaderBytes < 4096:
		return invalid("http.max_header_bytes", "must be at least 4096 bytes, got %d", c.HTTP.MaxHeaderBytes)
	case c.HTTP.MaxConnections < 0:
		return invalid("http.max_connections", "must not be negative (0 is unlimited)")
	case c.HTTP.MaxConnectionsPerAccount < 0:
		return invalid("http.max_connections_per_account", "must not be negative (0 is unlimited)")
	case (c.HTTP.TLSCert == "") != (c.HTTP.TLSKey == ""):
		return invalid("http.tls_cert", "http.tls_cert and http.tls_key go together")
	case c.HTTP.InternalAddr != "" && c.HTTP.InternalAddr == c.HTTP.Addr:
		return invalid("http.internal_addr", "must differ from http.addr (%s)", c.HTTP.Addr)
	case c.Listen.IdleCheck < 100*time.Millisecond:
		return invalid("listen.idle_check", "must be at least 100ms, got %s", c.Listen.IdleCheck)
	case c.Listen.ReconnectMin <= 0:
		return invalid("listen.reconnect_min", "must be positive")
	case c.Listen.ReconnectMax < c.Listen.ReconnectMin:
		return invalid("listen.reconnect_max", "must be at least listen.reconnect_min (%s), got %s", c.Listen.ReconnectMin, c.Listen.ReconnectMax)
	case c.Listen.PageSize < 1 || c.Listen.PageSize > 100000:
		return invalid("listen.page_size", "must be between 1 and 100000, got %d", c.Listen.PageSize)
	case c.SocketIO.PingInterval <= 0:
		return invalid("socketio.ping_interval", "must be positive")
	case c.SocketIO.PingTimeout <= 0:
		return invalid("socketio.ping_timeout", "must be positive")
	case c.SocketIO.MaxPayload < 1024:
		return invalid("socketio.max_payload", "must be at least 1024 bytes, got %d", c.SocketIO.MaxPayload)
	case c.SocketIO.ConnectTimeout <= 0:
		return invalid("socketio.connect_timeout", "must be positive")
	case c.SocketIO.MaxUnauthenticated < 0:
		return invalid("socketio.max_unauthenticated", "must not be negative (0 is unlimited), got %d", c.SocketIO.MaxUnauthenticated)
	case c.SocketIO.MaxUnauthenticatedPerAddress < 0:
		return invalid("socketio.max_unauthenticated_per_address", "must not be negative (0 is unlimited), got %d", c.SocketIO.MaxUnauthenticatedPerAddress)
	case c.SocketIO.MaxClientPackets < 1:
		return invalid("socketio.max_client_packets", "must be at least 1, got %d", c.SocketIO.MaxClientPackets)
	case c.SocketIO.RelayMaxBytes < 2 || c.SocketIO.RelayMaxBytes > c.SocketIO.MaxPayload:
		return invalid("socketio.relay_max_bytes", "must be between 2 and socketio.max_payload (%d), got %d", c.SocketIO.MaxPayload, c.SocketIO.RelayMaxBytes)
	case c.Snapshot.MaxConcurrent < 1:
		return invalid("snapshot.max_concurrent", "must be at least 1, got %d", c.Snapshot.MaxConcurrent)
	case c.Snapshot.MaxQueued < 0:
		return invalid("snapshot.max_queued", "must not be negative, got %d", c.Snapshot.MaxQueued)
	case c.Snapshot.MaxItems < 1:
		return invalid("snapshot.max_items", "must be at least 1, got %d", c.Snapshot.MaxItems)
	case c.Snapshot.CursorTTL < time.Second:
		return invalid("snapshot.cursor_ttl", "must be at least 1s, got %s", c.Snapshot.CursorTTL)
	case c.SocketIO.RelayRate < 1:
		return invalid("socketio.relay_rate", "must be at least 1, got %d", c.SocketIO.RelayRate)
	case c.WS.MaxClientMessages < 1:
		return invalid("ws.max_client_messages", "must be at least 1, got %d", c.WS.MaxClientMessages)
	case c.Auth.Algorithm != auth.AlgHS256 && c.Auth.Algorithm != auth.AlgRS256 && c.Auth.Algorithm != auth.AlgES256:
		return invalid("auth.algorithm", "must be HS256, RS256 or ES256, got %q", c.Auth.Algorithm)
	case c.Auth.Algorithm == auth.AlgHS256 && (c.Auth.PublicKeyFile != "" || c.Auth.JWKSURL != ""):
		return invalid("auth.algorithm", "HS256 takes auth.jwt_secret or auth.jwt_secret_file, not a public key or JWKS")
	case c.Auth.Algorithm != auth.AlgHS256 && (c.Auth.JWTSecret != "" || c.Auth.JWTSecretFile != ""):
		return invalid("auth.algorithm", "%s verifies with auth.public_key_file or auth.jwks_url, not a shared secret", c.Auth.Algorithm)
	case c.Auth.PublicKeyFile != "" && c.Auth.JWKSURL != "":
		return invalid("auth.jwks_url", "set auth.public_key_file or auth.jwks_url, not both")
	case c.Auth.JWTSecret != "" && c.Auth.JWTSecretFile != "":
		return invalid("auth.jwt_secret_file", "set auth.jwt_secret or auth.jwt_secret_file, not both")
	case c.Watch.Token != "" && c.Watch.TokenFile != "":
		return invalid("watch.token_file", "set watch.token or watch.token_file, not both")
	case c.Auth.JWKSRefresh < time.Second:
		return invalid("auth.jwks_refresh", "must be at least 1s, got %s", c.Auth.JWKSRefresh)
	case c.Auth.JWKSMinRefresh <= 0 || c.Auth.JWKSMinRefresh > c.Auth.JWKSRefresh:
		return invalid("auth.jwks_min_refresh", "must be positive and at most auth.jwks_refresh (%s), got %s", c.Auth.JWKSRefresh, c.Auth.JWKSMinRefresh)
	case c.Auth.AccountClaim == "":
		return invalid("auth.account_claim", "must not be empty")
	case c.Hub.MaxLag < time.Second:
		return invalid("hub.max_lag", "must be at least 1s, got %s", c.Hub.MaxLag)
	case c.Hub.ReplayCache < 0:
		return invalid("hub.replay_cache", "must not be negative (0 disables it), got %d", c.Hub.ReplayCache)
	case c.Hub.ReplayBuffer < 1:
		return invalid("hub.replay_buffer", "must be at least 1, got %d", c.Hub.ReplayBuffer)
	case c.WS.PingInterval <= 0:
		return invalid("ws.ping_interval", "must be positive")
	case c.WS.PongWait <= c.WS.PingInterval:
		return invalid("ws.pong_wait", "must be longer than ws.ping_interval (%s), got %s", c.WS.PingInterval, c.WS.PongWait)
	case c.WS.WriteWait <= 0:
		return invalid("ws.write_wait", "must be positive")
	case c.WS.ReadLimit < 128:
		return invalid("ws.read_limit", "must be at least 128 bytes, got %d", c.WS.ReadLimit)
	case c.Log.Retention < time.Minute:
		return invalid("log.retention", "must be at least 1m, got %s", c.Log.Retention)
	case c.Log.PruneInterval <= 0:
		return invalid("log.prune_interval", "must be positive")
	}
	if err := c.Fleet.validate(c.Auth.Algorithm); err != nil {
		return err
	}
	switch c.Logging.Level {
	case "debug", "info", "warn", "error":
	default:
		return invalid("logging.level", "must be debug, info, warn or error, got %q", c.Logging.Level)
	}
	switch c.Logging.Format {
	case "json", "text":
	default:
		return invalid("logging.format", "must be json or text, got %q", c.Logging.Format)
	}
	if c.Database.URL != "" {
		if err := checkDatabaseURL(c.Database.URL); err != nil {
			return err
		}
	}
	return nil
}

func (f Fleet) validate(algorithm string) error {
	if f.AdvertiseURL == "" {
		return nil
	}
	u, err := url.Parse(f.AdvertiseURL)
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil:
		return invalid("fleet.advertise_url", "must be this instance's http:// or https:// base URL as the others reach it (e.g. http://10.0.0.5:8080), got %q", f.AdvertiseURL)
	case f.Lease < time.Second:
		return invalid("fleet.lease", "must be at least 1s, got %s", f.Lease)
	case f.Secret == "" && algorithm != auth.AlgHS256:
		return invalid("fleet.secret", "required with fleet.advertise_url when auth.algorithm is %s (HS256 derives it from auth.jwt_secret)", algorithm)
	case f.Secret != "" && len(f.Secret) < 32:
		return invalid("fleet.secret", "must be at least 32 bytes, got %d", len(f.Secret))
	}
	return nil
}

// checkDatabaseURL rejects a URL pgx could not parse, without echoing its password.
func checkDatabaseURL(s string) error {
	if strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://") {
		if _, err := url.Parse(s); err != nil {
			return invalid("database.url", "not a valid URL")
		}
	}
	return nil
}

// RequireDatabase checks that database.url is set.
func (c Config) RequireDatabase() error {
	if c.Database.URL == "" {
		return invalid("database.url", "required (NOTIFIER_DATABASE_URL or --database-url)")
	}
	return nil
}

// RequireServe checks what serving needs (database.url, the token verifier's keys)
// and names everything missing at once, in one line.
func (c Config) RequireServe() error {
	var parts []string
	for _, err := range []error{c.RequireDatabase(), c.RequireVerifier()} {
		if err != nil {
			parts = append(parts, strings.TrimPrefix(err.Error(), ErrInvalid.Error()+": "))
		}
	}
	if len(parts) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrInvalid, strings.Join(parts, "; "))
}

// RequireSecret checks that an HS256 secret is configured and long enough: needed to
// verify HS256 tokens and to mint any (token, demo).
func (c Config) RequireSecret() error {
	switch {
	case c.Auth.Algorithm != auth.AlgHS256:
		return invalid("auth.algorithm", "minting tokens needs HS256; with %s, tokens come from your issuer", c.Auth.Algorithm)
	case c.Auth.JWTSecret == "":
		return invalid("auth.jwt_secret", "required (NOTIFIER_AUTH_JWT_SECRET, or auth.jwt_secret_file: --jwt-secret-file)")
	case len(c.Auth.JWTSecret) < 32:
		return invalid("auth.jwt_secret", "must be at least 32 bytes for HS256, got %d", len(c.Auth.JWTSecret))
	}
	return nil
}

// RequireVerifier checks that tokens can be verified: an HS256 secret, or for RS256
// and ES256 a public key file or a JWKS URL.
func (c Config) RequireVerifier() error {
	if c.Auth.Algorithm == auth.AlgHS256 {
		return c.RequireSecret()
	}
	if c.Auth.PublicKeyFile == "" && c.Auth.JWKSURL == "" {
		return invalid("auth.public_key_file", "%s needs auth.public_key_file or auth.jwks_url", c.Auth.Algorithm)
	}
	return nil
}
