package main

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
)

// stmtStat is what PostgreSQL spent on one kind of statement (pg_stat_statements),
// where the notifier's part of the server's time shows.
type stmtStat struct {
	Name    string  `json:"name"`
	Calls   int64   `json:"calls"`
	Rows    int64   `json:"rows"`
	TotalMS float64 `json:"total_ms"`
	MeanMS  float64 `json:"mean_ms"`
}

// stmtKinds name statements by a piece of their text that pg_stat_statements keeps
// (it replaces constants with $n, so markers are identifiers). The notifier's come
// from sql/*.sql and notifier/eventlog; "app" are the tool's writers. The deferred
// trigger runs at COMMIT, outside the INSERT, so it has its own line; its time
// includes waiting for the log's advisory lock.
var stmtKinds = []struct{ name, marker string }{
	{"notifier: enrich appointments", `FROM appointment_procedures ap`},
	{"notifier: enrich doctors", `FROM doctor_procedures dp`},
	{"notifier: read log (listener catch-up)", `FROM notifier.events WHERE id > $1`},
	{"notifier: read log of account (replay)", `WHERE account_id = $1`},
	{"notifier: log bounds", `FROM notifier.log_state`},
	{"app: INSERT appointment + procedure link", `INSERT INTO appointments`},
	{"app: trigger at COMMIT, notifier.append (incl. lock wait)", `notifier.append(`},
}

// statements is pg_stat_statements on one database, when the server loads it.
type statements struct {
	conn *pgx.Conn
}

// openStatements connects to dbURL and enables pg_stat_statements there; nil when the
// server does not preload it (a --database-url server may not).
func openStatements(ctx context.Context, dbURL string) (*statements, error) {
	conn, err := connect(ctx, dbURL)
	if err != nil {
		return nil, err
	}
	var libs string
	if err := conn.QueryRow(ctx, "SELECT current_setting('shared_preload_libraries')").Scan(&libs); err != nil {
		conn.Close(ctx)
		return nil, fmt.Errorf("read shared_preload_libraries: %w", err)
	}
	if !strings.Contains(libs, "pg_stat_statements") {
		conn.Close(ctx)
		return nil, nil
	}
	if _, err := conn.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements"); err != nil {
		conn.Close(ctx)
		return nil, fmt.Errorf("create extension pg_stat_statements: %w", err)
	}
	return &statements{conn: conn}, nil
}

func (s *statements) close(ctx context.Context) {
	if s != nil {
		_ = s.conn.Close(context.WithoutCancel(ctx))
	}
}

// reset clears the statistics of every database.
func (s *statements) reset(ctx context.Context) error {
	if s == nil {
		return nil
	}
	if _, err := s.conn.Exec(ctx, "SELECT pg_stat_statements_reset()"); err != nil {
		return fmt.Errorf("reset pg_stat_statements: %w", err)
	}
	return nil
}

// read returns the statistics of database dbURL's statements by kind, largest total
// time first; statements of no known kind are left out.
func (s *statements) read(ctx context.Context, db string) ([]stmtStat, error) {
	if s == nil {
		return nil, nil
	}
	rows, err := s.conn.Query(ctx, `SELECT query, calls, rows, total_exec_time
FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
WHERE d.datname = $1`, db)
	if err != nil {
		return nil, fmt.Errorf("read pg_stat_statements: %w", err)
	}
	defer rows.Close()
	byName := map[string]*stmtStat{}
	for rows.Next() {
		var query string
		var calls, n int64
		var total float64
		if err := rows.Scan(&query, &calls, &n, &total); err != nil {
			return nil, fmt.Errorf("read pg_stat_statements: %w", err)
		}
		for _, k := range stmtKinds {
			if strings.Contains(query, k.marker) {
				st := byName[k.name]
				if st == nil {
					st = &stmtStat{Name: k.name}
					byName[k.name] = st
				}
				st.Calls += calls
				st.Rows += n
				st.TotalMS += total
				break
			}
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read pg_stat_statements: %w", err)
	}
	out := make([]stmtStat, 0, len(byName))
	for _, st := range byName {
		if st.Calls > 0 {
			st.MeanMS = st.TotalMS / float64(st.Calls)
		}
		out = append(out, *st)
	}
	slices.SortFunc(out, func(a, b stmtStat) int {
		switch {
		case a.TotalMS > b.TotalMS:
			return -1
		case a.TotalMS < b.TotalMS:
			return 1
		}
		return 0
	})
	return out, nil
}
