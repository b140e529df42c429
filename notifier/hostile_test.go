package notifier_test

import (
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
