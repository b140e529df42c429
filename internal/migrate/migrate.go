// Package migrate applies the notifier's migrations (package triggers) in one
// transaction each way, and records them in notifier.schema_migrations.
//
// # Concurrency
//
// Up, Down and DownTo take a transaction-scoped advisory lock, so two notifiers
// migrating at once apply each file once.
//
// # Invariants
//
// Up either applies every pending migration or nothing (one transaction); it first
// checks that the clinic tables and columns the triggers and enrichment use exist, and
// that the migrating role holds every privilege the pending migrations need, and names
// whatever is missing; a generated rules migration names the tables it needs to own in
// its "-- notifier needs:" line. Down and DownTo check their privileges the same way,
// and refuse to leave an applied migration they were not given behind. Down removes
// everything Up added, the schema included, and never touches the application's rows.
package migrate

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Migration is one numbered pair of files.
type Migration struct {
	Version int
	Name    string
	Up      string
	Down    string
}

// Status is a migration and whether it is applied.
type Status struct {
	Migration
	Applied   bool
	AppliedAt time.Time
}

// ErrSchemaIncomplete is returned by Up when the database lacks clinic tables or
// columns the notifier needs.
var ErrSchemaIncomplete = errors.New("the clinic schema is incomplete")

// ErrPrivileges is returned by Up and Down, before they change anything, when the
// migrating role lacks a privilege the migrations need.
var ErrPrivileges = errors.New("the migrating role lacks privileges")

// need is a privilege a migration needs on a table: TRIGGER, SELECT, or OWNER (to be
// the table's owner or a member of its owning role, which DROP TRIGGER and ALTER TABLE
// require).
type need struct {
	privilege, table string
}

// upNeeds and downNeeds are what applying and reverting each migration needs, beyond
// CREATE on the database (for schema notifier) or ownership of schema notifier. The
// functions the migrations install run as their owner and touch only notifier.*, and
// read nothing of the clinic's tables but their triggers' OLD and NEW: at run time
// they need nothing more.
var (
	upNeeds = map[int][]need{
		1: {{"TRIGGER", "appointments"}, {"TRIGGER", "doctors"}},
		// 0002 drops 0001's triggers and alters the log.
		2: {{"TRIGGER", "appointments"}, {"TRIGGER", "doctors"}, {"TRIGGER", "statuses"}, {"SELECT", "statuses"},
			{"OWNER", "appointments"}, {"OWNER", "doctors"}, {"OWNER", "notifier.events"}},
		// 0003 drops 0002's triggers; rules migrations (0004 on) name their tables in a
		// "-- notifier needs:" line.
		3: {{"OWNER", "appointments"}, {"OWNER", "doctors"}, {"OWNER", "statuses"}, {"OWNER", "notifier.events"}},
	}
	downNeeds = map[int][]need{
		1: {{"OWNER", "appointments"}, {"OWNER", "doctors"}, {"OWNER", "notifier.events"}},
		2: {{"OWNER", "appointments"}, {"OWNER", "doctors"}, {"OWNER", "statuses"}, {"OWNER", "notifier.events"}},
		3: {{"OWNER", "appointments"}, {"OWNER", "doctors"}, {"OWNER", "statuses"}, {"OWNER", "notifier.events"}},
	}
)

// needsMarker starts the line of a generated migration naming the tables it needs
// to own: "-- notifier needs: OWNER public.appointments, OWNER public.doctors".
const needsMarker = "-- notifier needs: "

// needsOf is what applying (up) or reverting m needs.
func needsOf(m Migration, needs map[int][]need, up bool) []need {
	out := slices.Clone(needs[m.Version])
	body := m.Down
	if up {
		body = m.Up
	}
	for line := range strings.Lines(body) {
		list, ok := strings.CutPrefix(strings.TrimRight(line, "\n"), needsMarker)
		if !ok {
			if !strings.HasPrefix(line, "--") {
				break // only the leading comment block
			}
			continue
		}
		for _, item := range strings.Split(list, ",") {
			if priv, tbl, ok := strings.Cut(strings.TrimSpace(item), " "); ok {
				out = append(out, need{priv, tbl})
			}
		}
	}
	return out
}

// checkPrivileges reports, wrapped in ErrPrivileges, every privilege the current role
// lacks for running migrations ms in direction needs.
func checkPrivileges(ctx context.Context, tx pgx.Tx, ms []Migration, needs map[int][]need, direction string) error {
	var missing []string
	seen := map[need]bool{}
	var schemaOwned, schemaExists, canCreate bool
	if err := tx.QueryRow(ctx, `SELECT coalesce((SELECT pg_has_role(nspowner, 'USAGE') FROM pg_namespace WHERE nspname = 'notifier'), false),
       EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'notifier'),
       has_database_privilege(current_database(), 'CREATE')`).Scan(&schemaOwned, &schemaExists, &canCreate); err != nil {
		return fmt.Errorf("check privileges: %w", err)
	}
	switch {
	case schemaExists && !schemaOwned:
		missing = append(missing, "ownership of schema notifier")
	case !schemaExists && !canCreate && direction == "up":
		missing = append(missing, "CREATE on the database (for schema notifier)")
	}
	for _, m := range ms {
		for _, n := range needsOf(m, needs, direction == "up") {
			if seen[n] {
				continue
			}
			seen[n] = true
			var ok bool
			var err error
			if n.privilege == "OWNER" {
				// A table the migrations create (notifier.events) is owned by whoever creates it.
				err = tx.QueryRow(ctx, `SELECT coalesce((SELECT pg_has_role(relowner, 'USAGE') FROM pg_class WHERE oid = to_regclass($1)), true)`, n.table).Scan(&ok)
			} else {
				err = tx.QueryRow(ctx, `SELECT coalesce(has_table_privilege(to_regclass($1), $2), false)`, n.table, n.privilege).Scan(&ok)
			}
			if err != nil {
				return fmt.Errorf("check privileges on %s: %w", n.table, err)
			}
			if !ok {
				what := n.privilege + " on " + n.table
				if n.privilege == "OWNER" {
					what = "ownership of " + n.table
				}
				missing = append(missing, fmt.Sprintf("%s (migration %04d_%s)", what, m.Version, m.Name))
			}
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: migrate %s needs %s", ErrPrivileges, direction, strings.Join(missing, ", "))
	}
	return nil
}

var fileRE = regexp.MustCompile(`^(\d+)_([a-z0-9_]+)\.(up|down)\.sql$`)

// Load reads the NNNN_name.up.sql / NNNN_name.down.sql pairs at fsys's root.
func Load(fsys fs.FS) ([]Migration, error) {
	files, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	byVersion := map[int]*Migration{}
	seen := map[string]string{} // "1.up" -> the file that gave it
	for _, f := range files {
		m := fileRE.FindStringSubmatch(f.Name())
		if m == nil {
			continue
		}
		v, _ := strconv.Atoi(m[1])
		// 0001_a.up.sql and 1_a.up.sql are one version: keeping either would hide the other.
		key := fmt.Sprintf("%d.%s", v, m[3])
		if prev, dup := seen[key]; dup {
			return nil, fmt.Errorf("migration %d has two %s files: %s and %s", v, m[3], prev, f.Name())
		}
		seen[key] = f.Name()
		body, err := fs.ReadFile(fsys, f.Name())
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", f.Name(), err)
		}
		mig := byVersion[v]
		if mig == nil {
			mig = &Migration{Version: v, Name: m[2]}
			byVersion[v] = mig
		}
		if mig.Name != m[2] {
			return nil, fmt.Errorf("migration %d has two names: %s and %s", v, mig.Name, m[2])
		}
		if m[3] == "up" {
			mig.Up = string(body)
		} else {
			mig.Down = string(body)
		}
	}
	out := make([]Migration, 0, len(byVersion))
	for _, m := range byVersion {
		if m.Up == "" || m.Down == "" {
			return nil, fmt.Errorf("migration %04d_%s lacks its up or down file", m.Version, m.Name)
		}
		out = append(out, *m)
	}
	slices.SortFunc(out, func(a, b Migration) int { return a.Version - b.Version })
	return out, nil
}

// Merge joins migration sets (the embedded ones and a DBA's rules folder) into one,
// in version order; a version given twice is an error.
func Merge(sets ...[]Migration) ([]Migration, error) {
	var out []Migration
	by := map[int]Migration{}
	for _, set := range sets {
		for _, m := range set {
			if prev, dup := by[m.Version]; dup {
				return nil, fmt.Errorf("migration %d is both %04d_%s and %04d_%s", m.Version, prev.Version, prev.Name, m.Version, m.Name)
			}
			by[m.Version] = m
			out = append(out, m)
		}
	}
	slices.SortFunc(out, func(a, b Migration) int { return a.Version - b.Version })
	return out, nil
}

// lockKey serialises migrations: "notifmig" in ASCII.
const lockKey = 7957695015049423207

const bookkeeping = `CREATE SCHEMA IF NOT EXISTS notifier;
CREATE TABLE IF NOT EXISTS notifier.schema_migrations (
    version    integer     PRIMARY KEY,
    name       text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)`

// required lists the clinic tables and columns the triggers and enrichment read.
var required = map[string][]string{
	"statuses":               {"id", "name", "color"},
	"contacts":               {"id", "phone", "email"},
	"patients":               {"id", "name", "contactId", "accountId"},
	"procedures":             {"id", "name", "price", "accountId"},
	"doctors":                {"id", "name", "crm", "email", "phone", "isBusy", "accountId", "createdAt", "updatedAt", "deletedAt"},
	"doctor_procedures":      {"id", "doctorId", "procedureId"},
	"appointments":           {"id", "date", "startTime", "endTime", "notes", "doctorId", "patientId", "statusId", "accountId", "createdAt", "updatedAt", "deletedAt"},
	"appointment_procedures": {"id", "appointmentId", "procedureId"},
}

// CheckSchema reports every required clinic table or column that the search_path
// does not resolve, wrapped in ErrSchemaIncomplete.
func CheckSchema(ctx context.Context, q interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}) error {
	rows, err := q.Query(ctx, `SELECT c.relname, a.attname
FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE c.oid = ANY (SELECT to_regclass(quote_ident(t))::oid FROM unnest($1::text[]) t)`, slices.Sorted(maps.Keys(required)))
	if err != nil {
		return fmt.Errorf("check clinic schema: %w", err)
	}
	have := map[string]bool{}
	tables := map[string]bool{}
	for rows.Next() {
		var t, c string
		if err := rows.Scan(&t, &c); err != nil {
			return fmt.Errorf("check clinic schema: %w", err)
		}
		tables[t] = true
		have[t+"."+c] = true
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("check clinic schema: %w", err)
	}
	var missing []string
	for _, t := range slices.Sorted(maps.Keys(required)) {
		if !tables[t] {
			missing = append(missing, "table "+t)
			continue
		}
		for _, c := range required[t] {
			if !have[t+"."+c] {
				missing = append(missing, fmt.Sprintf("column %s.%q", t, c))
			}
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: missing %s", ErrSchemaIncomplete, strings.Join(missing, ", "))
	}
	return nil
}

// Up applies every pending migration in one transaction and returns those applied.
func Up(ctx context.Context, conn *pgx.Conn, migrations []Migration) ([]Migration, error) {
	var applied []Migration
	err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", int64(lockKey)); err != nil {
			return fmt.Errorf("lock: %w", err)
		}
		if err := CheckSchema(ctx, tx); err != nil {
			return err
		}
		done, err := appliedIfAny(ctx, tx)
		if err != nil {
			return err
		}
		var pending []Migration
		for _, m := range migrations {
			if _, ok := done[m.Version]; !ok {
				pending = append(pending, m)
			}
		}
		if err := checkPrivileges(ctx, tx, pending, upNeeds, "up"); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, bookkeeping); err != nil {
			return fmt.Errorf("create notifier.schema_migrations: %w", err)
		}
		for _, m := range migrations {
			if _, ok := done[m.Version]; ok {
				continue
			}
			if _, err := tx.Exec(ctx, m.Up); err != nil {
				return fmt.Errorf("apply %04d_%s: %w", m.Version, m.Name, err)
			}
			if _, err := tx.Exec(ctx, "INSERT INTO notifier.schema_migrations (version, name) VALUES ($1, $2)", m.Version, m.Name); err != nil {
				return fmt.Errorf("record %04d_%s: %w", m.Version, m.Name, err)
			}
			applied = append(applied, m)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("migrate up: %w", err)
	}
	return applied, nil
}

// Down reverts every applied migration, newest first, then drops the bookkeeping table
// and schema notifier, in one transaction; it returns those reverted.
func Down(ctx context.Context, conn *pgx.Conn, migrations []Migration) ([]Migration, error) {
	reverted, err := down(ctx, conn, migrations, 0, true)
	if err != nil {
		return nil, fmt.Errorf("migrate down: %w", err)
	}
	return reverted, nil
}

// DownTo reverts the applied migrations above version target, newest first, in one
// transaction, and keeps the rest (and schema notifier); it returns those reverted.
// DownTo with the newest built-in version takes a database back to the built-in
// migrations, removing a DBA's rules migrations (numbered from 1001).
func DownTo(ctx context.Context, conn *pgx.Conn, migrations []Migration, target int) ([]Migration, error) {
	reverted, err := down(ctx, conn, migrations, target, false)
	if err != nil {
		return nil, fmt.Errorf("migrate down to %d: %w", target, err)
	}
	return reverted, nil
}

func down(ctx context.Context, conn *pgx.Conn, migrations []Migration, target int, dropSchema bool) ([]Migration, error) {
	var reverted []Migration
	err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", int64(lockKey)); err != nil {
			return fmt.Errorf("lock: %w", err)
		}
		// Schema ownership first: without it the bookkeeping cannot even be read.
		if err := checkPrivileges(ctx, tx, nil, downNeeds, "down"); err != nil {
			return err
		}
		var exists bool
		if err := tx.QueryRow(ctx, "SELECT to_regclass('notifier.schema_migrations') IS NOT NULL").Scan(&exists); err != nil {
			return fmt.Errorf("read notifier.schema_migrations: %w", err)
		}
		if !exists {
			return nil
		}
		done, err := appliedVersions(ctx, tx)
		if err != nil {
			return err
		}
		// An applied migration this binary was not given (a rules folder not configured)
		// would be left behind, its objects depending on what the others remove.
		var unknown []string
		for _, v := range slices.Sorted(maps.Keys(done)) {
			if v > target && !slices.ContainsFunc(migrations, func(m Migration) bool { return m.Version == v }) {
				unknown = append(unknown, strconv.Itoa(v))
			}
		}
		if len(unknown) > 0 {
			return fmt.Errorf("applied migrations not given: %s (is rules.dir set?)", strings.Join(unknown, ", "))
		}
		var applied []Migration
		for _, m := range migrations {
			if _, ok := done[m.Version]; ok && m.Version > target {
				applied = append(applied, m)
			}
		}
		if err := checkPrivileges(ctx, tx, applied, downNeeds, "down"); err != nil {
			return err
		}
		for i := len(applied) - 1; i >= 0; i-- {
			m := applied[i]
			if _, err := tx.Exec(ctx, m.Down); err != nil {
				return fmt.Errorf("revert %04d_%s: %w", m.Version, m.Name, err)
			}
			if _, err := tx.Exec(ctx, "DELETE FROM notifier.schema_migrations WHERE version = $1", m.Version); err != nil {
				return fmt.Errorf("unrecord %04d_%s: %w", m.Version, m.Name, err)
			}
			reverted = append(reverted, m)
		}
		if !dropSchema {
			return nil
		}
		if _, err := tx.Exec(ctx, "DROP TABLE notifier.schema_migrations; DROP SCHEMA notifier"); err != nil {
			return fmt.Errorf("drop schema notifier: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return reverted, nil
}

// List returns every migration with whether and when it was applied.
func List(ctx context.Context, conn *pgx.Conn, migrations []Migration) ([]Status, error) {
	out := make([]Status, len(migrations))
	for i, m := range migrations {
		out[i].Migration = m
	}
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT to_regclass('notifier.schema_migrations') IS NOT NULL").Scan(&exists); err != nil {
		return nil, fmt.Errorf("migrate status: %w", err)
	}
	if !exists {
		return out, nil
	}
	done, err := appliedVersions(ctx, conn)
	if err != nil {
		return nil, fmt.Errorf("migrate status: %w", err)
	}
	for i := range out {
		if at, ok := done[out[i].Version]; ok {
			out[i].Applied, out[i].AppliedAt = true, at
		}
	}
	return out, nil
}

// appliedIfAny is appliedVersions, or nothing when the bookkeeping table is not there yet.
func appliedIfAny(ctx context.Context, tx pgx.Tx) (map[int]time.Time, error) {
	var exists bool
	if err := tx.QueryRow(ctx, "SELECT to_regclass('notifier.schema_migrations') IS NOT NULL").Scan(&exists); err != nil {
		return nil, fmt.Errorf("read notifier.schema_migrations: %w", err)
	}
	if !exists {
		return map[int]time.Time{}, nil
	}
	return appliedVersions(ctx, tx)
}

func appliedVersions(ctx context.Context, q interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}) (map[int]time.Time, error) {
	rows, err := q.Query(ctx, "SELECT version, applied_at FROM notifier.schema_migrations")
	if err != nil {
		return nil, fmt.Errorf("read notifier.schema_migrations: %w", err)
	}
	done := map[int]time.Time{}
	for rows.Next() {
		var v int
		var at time.Time
		if err := rows.Scan(&v, &at); err != nil {
			return nil, fmt.Errorf("read notifier.schema_migrations: %w", err)
		}
		done[v] = at
	}
	return done, rows.Err()
}

// Event is an event the installed rules emit (a row of notifier.rule_events).
type Event struct {
	Name    string
	Rule    string
	Op      string // insert, update or delete
	AliasOf string // the event this one repeats under another name, or ""
}

// Events lists the installed events, by rule and in the order each rule emits them;
// none before migration 0003.
func Events(ctx context.Context, conn *pgx.Conn) ([]Event, error) {
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT to_regclass('notifier.rule_events') IS NOT NULL").Scan(&exists); err != nil {
		return nil, fmt.Errorf("read notifier.rule_events: %w", err)
	}
	if !exists {
		return nil, nil
	}
	rows, err := conn.Query(ctx, "SELECT name, rule, op, coalesce(alias_of, '') FROM notifier.rule_events ORDER BY rule, ord")
	if err != nil {
		return nil, fmt.Errorf("read notifier.rule_events: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[Event])
	if err != nil {
		return nil, fmt.Errorf("read notifier.rule_events: %w", err)
	}
	return out, nil
}
