package notifier_test

import (
	"strings"
	"testing"
)

// TestHostileOperators: a role that can create in public defines || operators that are
// better matches than PostgreSQL's own for the notifier's payload (text || bigint) and
// that would rewrite every event to account 1. The notifier's SQL is schema-qualified,
// so nothing is rerouted: account 2's event reaches account 2 only.
func TestHostileOperators(t *testing.T) {
	t.Parallel()
	dbURL := pgtestDatabase(t)
	b := setup(t, func(o *setupOpts) { o.dbURL = dbURL })
	b.stop(t)
	b.exec(t, `CREATE FUNCTION public.reroute(a text, b bigint) RETURNS text LANGUAGE sql IMMUTABLE
AS $$ SELECT CASE WHEN a LIKE '%"account":' THEN a OPERATOR(pg_catalog.||) '1' ELSE a OPERATOR(pg_catalog.||) b::text END $$`)
	b.exec(t, `CREATE OPERATOR public.|| (LEFTARG = text, RIGHTARG = bigint, FUNCTION = public.reroute)`)
	b.exec(t, `CREATE FUNCTION public.reroute_id(a bigint, b text) RETURNS text LANGUAGE sql IMMUTABLE
AS $$ SELECT a::text OPERATOR(pg_catalog.||) b $$`)
	b.exec(t, `CREATE OPERATOR public.|| (LEFTARG = bigint, RIGHTARG = text, FUNCTION = public.reroute_id)`)
	b.start(t, nil)
	one := b.dial(t, 1, nil)
	two := b.dial(t, 2, nil)
	theirs := b.insertAppointment(t, 2)
	if f := two.next(t); f.rowID(t) != theirs {
		t.Fatalf("account 2 got %s, want its appointment %d", f.raw, theirs)
	}
	mine := b.insertAppointment(t, 1)
	if f := one.next(t); f.rowID(t) != mine {
		t.Fatalf("account 1 got %s, want only its own appointment %d", f.raw, mine)
	}
}

// TestHostileSearchPath: the database's search_path puts public before pg_catalog and a
// role defines there an operator with a built-in's exact signature (jsonb -> text) that
// forges every field. The notifier's sessions put pg_catalog first, so the events carry
// the row's own values.
func TestHostileSearchPath(t *testing.T) {
	t.Parallel()
	dbURL := pgtestDatabase(t)
	b := setup(t, func(o *setupOpts) { o.dbURL = dbURL })
	b.stop(t)
	var db string
	if err := b.db.QueryRow(t.Context(), `SELECT current_database()`).Scan(&db); err != nil {
		t.Fatal(err)
	}
	b.exec(t, `CREATE FUNCTION public.forge(j jsonb, k text) RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$ SELECT '"forged"'::jsonb $$`)
	b.exec(t, `CREATE OPERATOR public.-> (LEFTARG = jsonb, RIGHTARG = text, FUNCTION = public.forge)`)
	b.exec(t, `ALTER DATABASE "`+db+`" SET search_path = public, pg_catalog`)
	b.start(t, nil)
	c := b.dial(t, 1, nil)
	id := b.insertAppointment(t, 1)
	f := c.next(t)
	if f.rowID(t) != id || strings.Contains(string(f.raw), "forged") {
		t.Fatalf("got %s, want appointment %d with its own values", f.raw, id)
	}
}
