package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// scenarioNames are the scenarios in the order they run.
var scenarioNames = []string{"latency", "throughput", "memory", "inserts"}

// options are the command-line flags.
type options struct {
	databaseURL  string
	notifier     string
	jsonOut      bool
	keep         bool
	jsonFile     string
	scenarios    []string
	timeout      time.Duration
	dialParallel int

	clients  int
	rate     int
	duration time.Duration
	warmup   int

	floodEvents  int
	floodBatch   int
	floodClients int
	floodWriters int
	floodTimeout time.Duration

	idleConns int
	perAcct   int
	preload   int
	fkIndexes bool
	pgSet     settingsFlag

	insertWorkers  int
	insertDuration time.Duration
	insertServed   bool

	peerBin       string
	runs          int
	sideClients   int
	sideAccounts  int
	sideWriters   int
	sideRate      int
	sideNotes     int
	sideTransport string
	sideDuration  time.Duration
	lateAfter     time.Duration

	values map[string]string // every flag's value, for the report (--database-url left out)
}

// errUsage marks a command-line mistake (exit status 2).
var errUsage = errors.New("usage")

func parseOptions(args []string, stderr io.Writer) (options, error) {
	var o options
	var scenarios string
	fs := flag.NewFlagSet("notifier-load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, `notifier-load measures the notifier black-box: it starts the real binary, talks to it
over WebSocket and PostgreSQL only, and prints latency, throughput, CPU, memory and
insert-rate figures. Loopback only; every run is bounded in count and time.

Usage: notifier-load [flags]

`)
		fs.PrintDefaults()
	}
	fs.StringVar(&o.databaseURL, "database-url", "", "a scratch PostgreSQL database to use instead of a throwaway cluster (the tool writes thousands of rows and creates databases beside it)")
	fs.StringVar(&o.notifier, "notifier", "", "notifier binary (default: go build one into a temporary directory)")
	fs.BoolVar(&o.jsonOut, "json", false, "print the results as JSON instead of tables")
	fs.StringVar(&o.jsonFile, "json-file", "", "also write the JSON results to this file")
	fs.BoolVar(&o.keep, "keep", false, "keep the work directory (notifier logs) and print where it is")
	fs.StringVar(&scenarios, "scenarios", strings.Join(scenarioNames, ","), "comma-separated scenarios to run")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Minute, "give up after this long")
	fs.IntVar(&o.dialParallel, "dial-parallel", 32, "WebSocket handshakes in flight at once")

	fs.IntVar(&o.clients, "clients", 100, "latency: WebSocket clients on account 1")
	fs.IntVar(&o.rate, "rate", 200, "latency: inserts per second, one per transaction")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "latency: how long to write")
	fs.IntVar(&o.warmup, "warmup", 20, "latency: inserts committed first and not measured")

	fs.IntVar(&o.floodEvents, "flood-events", 20000, "throughput: events to commit")
	fs.IntVar(&o.floodBatch, "flood-batch", 10, "throughput: events per transaction")
	fs.IntVar(&o.floodClients, "flood-clients", 200, "throughput: WebSocket clients on account 1")
	fs.IntVar(&o.floodWriters, "flood-writers", 4, "throughput: concurrent writer connections")
	fs.DurationVar(&o.floodTimeout, "flood-timeout", 45*time.Second, "throughput: how long to wait for deliveries after the last commit")

	fs.IntVar(&o.idleConns, "idle-conns", 2000, "memory: idle WebSocket connections")
	fs.IntVar(&o.perAcct, "idle-per-account", 100, "memory: connections per account (accounts 1, 2, ...; the notifier limits connections per account)")
	fs.BoolVar(&o.fkIndexes, "fk-indexes", false, `index appointment_procedures("appointmentId", id) and doctor_procedures("doctorId", id) in every database the tool prepares (the reference schema has none; the enrichment queries look links up by them)`)
	fs.Var(&o.pgSet, "pg-set", "name=value: a postgresql.conf setting for the throwaway cluster, after its defaults (fsync, synchronous_commit, full_page_writes off); repeatable")
	fs.IntVar(&o.preload, "preload", 0, "appointments (with procedure links) written before the triggers are installed, so that scenarios run on a table of realistic size")

	fs.IntVar(&o.insertWorkers, "insert-workers", 4, "inserts: concurrent writer connections")
	fs.DurationVar(&o.insertDuration, "insert-duration", 10*time.Second, "inserts: how long each database is written")
	fs.BoolVar(&o.insertServed, "insert-served", true, "inserts: also run with the notifier serving one dashboard")

	fs.StringVar(&o.peerBin, "peer-bin", "", "pg_eventserv binary: run latency, throughput and memory on both it and the notifier, alternately, with the --side-* workload")
	fs.IntVar(&o.runs, "runs", 3, "with --peer-bin: runs of each scenario on each side")
	fs.IntVar(&o.sideClients, "side-clients", 200, "with --peer-bin: WebSocket clients, spread evenly over --side-accounts")
	fs.IntVar(&o.sideAccounts, "side-accounts", 10, "with --peer-bin: accounts (the peer's channels)")
	fs.IntVar(&o.sideWriters, "side-writers", 4, "with --peer-bin: writer connections, one appointment per transaction, accounts in turn")
	fs.IntVar(&o.sideRate, "side-rate", 200, "with --peer-bin, latency: commits per second over all writers (throughput: as fast as they go)")
	fs.DurationVar(&o.sideDuration, "side-duration", 10*time.Second, "with --peer-bin: how long the writers write in each run")
	fs.StringVar(&o.sideTransport, "side-transport", "ws", "with --peer-bin: what the notifier's dashboards connect with, ws or socketio (WebSocket only, token in CONNECT's auth)")
	fs.IntVar(&o.sideNotes, "side-notes-bytes", 0, "with --peer-bin: bytes of notes in each appointment the writers insert, to grow the notifier's payload (the peer's carries only the ids)")
	fs.DurationVar(&o.lateAfter, "late-after", 3*time.Second, "with --peer-bin: an event not received this long after the last commit is late")

	if err := fs.Parse(args); err != nil {
		return o, fmt.Errorf("%w: %v", errUsage, err)
	}
	o.values = map[string]string{}
	fs.VisitAll(func(f *flag.Flag) {
		if f.Name != "database-url" && f.Name != "notifier" && f.Name != "json-file" && f.Name != "peer-bin" {
			o.values[f.Name] = f.Value.String()
		}
	})
	if fs.NArg() > 0 {
		return o, fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
	}
	for _, s := range strings.Split(scenarios, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		if !slices.Contains(scenarioNames, s) {
			return o, fmt.Errorf("%w: --scenarios: unknown %q (known: %s)", errUsage, s, strings.Join(scenarioNames, ", "))
		}
		o.scenarios = append(o.scenarios, s)
	}
	return o, o.validate()
}

// validate keeps every run bounded.
func (o options) validate() error {
	type bound struct {
		name     string
		v, lo, h int
	}
	for _, b := range []bound{
		{"dial-parallel", o.dialParallel, 1, 512},
		{"clients", o.clients, 1, 10000},
		{"rate", o.rate, 1, 10000},
		{"warmup", o.warmup, 0, 10000},
		{"flood-events", o.floodEvents, 1, 1000000},
		{"flood-batch", o.floodBatch, 1, 1000},
		{"flood-clients", o.floodClients, 1, 10000},
		{"flood-writers", o.floodWriters, 1, 64},
		{"idle-conns", o.idleConns, 0, 50000},
		{"idle-per-account", o.perAcct, 1, 50000},
		{"preload", o.preload, 0, 5000000},
		{"insert-workers", o.insertWorkers, 1, 64},
		{"runs", o.runs, 1, 20},
		{"side-clients", o.sideClients, 1, 10000},
		{"side-accounts", o.sideAccounts, 1, 1000},
		{"side-writers", o.sideWriters, 1, 64},
		{"side-rate", o.sideRate, 1, 10000},
		{"side-notes-bytes", o.sideNotes, 0, 1 << 20},
	} {
		if b.v < b.lo || b.v > b.h {
			return fmt.Errorf("%w: --%s must be between %d and %d, got %d", errUsage, b.name, b.lo, b.h, b.v)
		}
	}
	type dbound struct {
		name     string
		v, lo, h time.Duration
	}
	for _, b := range []dbound{
		{"timeout", o.timeout, time.Second, time.Hour},
		{"duration", o.duration, 100 * time.Millisecond, 5 * time.Minute},
		{"flood-timeout", o.floodTimeout, time.Second, 10 * time.Minute},
		{"insert-duration", o.insertDuration, 100 * time.Millisecond, 5 * time.Minute},
		{"side-duration", o.sideDuration, 100 * time.Millisecond, 5 * time.Minute},
		{"late-after", o.lateAfter, 10 * time.Millisecond, drainTimeout},
	} {
		if b.v < b.lo || b.v > b.h {
			return fmt.Errorf("%w: --%s must be between %s and %s, got %s", errUsage, b.name, b.lo, b.h, b.v)
		}
	}
	if len(o.pgSet) > 0 && o.databaseURL != "" {
		return fmt.Errorf("%w: --pg-set applies to the throwaway cluster, not to --database-url", errUsage)
	}
	if o.sideTransport != "ws" && o.sideTransport != "socketio" {
		return fmt.Errorf("%w: --side-transport must be ws or socketio, got %q", errUsage, o.sideTransport)
	}
	if o.sideClients%o.sideAccounts != 0 {
		return fmt.Errorf("%w: --side-clients (%d) must be a multiple of --side-accounts (%d)", errUsage, o.sideClients, o.sideAccounts)
	}
	if len(o.scenarios) == 0 {
		return fmt.Errorf("%w: --scenarios names none", errUsage)
	}
	return nil
}

// settingsFlag collects --pg-set name=value pairs.
type settingsFlag map[string]string

func (s *settingsFlag) String() string {
	if s == nil || len(*s) == 0 {
		return ""
	}
	keys := make([]string, 0, len(*s))
	for k := range *s {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for i, k := range keys {
		keys[i] = k + "=" + (*s)[k]
	}
	return strings.Join(keys, ",")
}

func (s *settingsFlag) Set(v string) error {
	name, value, ok := strings.Cut(v, "=")
	if !ok || name == "" {
		return fmt.Errorf("want name=value, got %q", v)
	}
	if *s == nil {
		*s = settingsFlag{}
	}
	(*s)[name] = value
	return nil
}

func (o options) has(scenario string) bool { return slices.Contains(o.scenarios, scenario) }

// sideScenario says whether scenario runs side by side with the peer instead of on the
// notifier alone.
func (o options) sideScenario(scenario string) bool {
	return o.peerBin != "" && (scenario == "latency" || scenario == "throughput" || scenario == "memory")
}
