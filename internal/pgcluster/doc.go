// Package pgcluster runs a throwaway PostgreSQL cluster: initdb into a
// temporary directory, pg_ctl start on 127.0.0.1, and remove it all on Close.
// The notifier demo command and the tests (through internal/pgtest) use it.
//
// # Lifecycle
//
// Start creates a directory (under Options.Dir, or the system temporary
// directory), runs initdb into <dir>/data, writes the settings and runs
// pg_ctl start -w, so the server accepts connections when Start returns. The
// server log goes to <dir>/postgres.log. Stop and Restart stop and start the
// same data directory on the same port, for tests that take the server away.
// Close stops the server with -m immediate and removes the directory; call it
// even after Stop. A Cluster whose Close was not called (a killed test binary)
// leaves a running postmaster and a pgcluster-* directory behind.
//
// The cluster is tuned for speed, not durability: fsync, synchronous_commit
// and full_page_writes are off. An operating system crash loses data; a
// server crash (Stop with "immediate") keeps everything but the commits of
// the last moment (up to three wal_writer_delay periods), which asynchronous
// commit had not yet written out. Stop with "fast" loses nothing, and
// Settings {"synchronous_commit": "on"} makes "immediate" lose nothing too
// (cheaply, as fsync stays off); tests of crash recovery want that.
//
// # Running as root
//
// initdb and postgres refuse to run as root. When the process is root, every
// program runs as the "postgres" OS user (through SysProcAttr.Credential with
// no supplementary groups) and the cluster directory is chowned to it; every
// directory above it must be searchable by that user, which Start checks.
//
// # Concurrency
//
// Start may be called from many goroutines and many processes at once: each
// cluster has its own directory, and a port picked by the kernel. Picking a
// port and binding it are separate steps, so another process can take the
// port in between; Start then retries on a new port (three attempts in all)
// when the server log says the address is in use. A fixed Options.Port is not
// retried. The methods of one Cluster are safe for concurrent use; Stop,
// Restart and Close are serialised.
//
// # Invariants
//
// The directory Start creates belongs to the Cluster, and nothing outside it
// is written. The port never changes after Start, so connection strings stay
// valid across Stop and Restart.
package pgcluster
