-- notifier 0003: events by rule. Which table publishes which events is declared in a
-- rule file and installed by generated migrations (0004 installs the clinic's; `notifier
-- rules sql` writes a DBA's); this migration installs the machinery they share.
--
-- What changes (docs/design.md §1 and the README's DBA guide explain each):
--   notifier.rules, notifier.rule_events   the installed rules and the events each emits
--                                          (read by the service and `migrate status`)
--   notifier.lists, check_list()           the lists dashboards load before they follow
--   notifier.derived                       one event a committing transaction makes
--   notifier.derive()                      the events of every rule the transaction
--                                          touched; rewritten by each rules migration
--   notifier.lookups, notifier.lookup()    mirrors of small reference tables (statuses)
--                                          for rule conditions, kept by copy_lookup()
--   notifier.check_columns(), check_rule() used by rules migrations to refuse a bad
--                                          rule with its name, before anything changes
--   notifier.create_function()             used by rules migrations to create a rule's
--                                          functions for its table's schema
--   notifier.pending.rule                  was tbl: the rule whose table changed
--   notifier.events.old_data               the row before an update, for events that
--                                          keep it (appointments.status.changed)
--   notifier.capture(rule, key)            stages a change of any rule's table
--   notifier.flush()                       the events come from notifier.derive()
-- Removed: 0002's capture triggers on appointments and doctors (0004 puts them back as
-- the clinic's rules) and notifier.status_names with its triggers (0004 mirrors
-- statuses as a lookup).

DROP TRIGGER notifier_appointments_capture ON appointments;
DROP TRIGGER notifier_doctors_capture ON doctors;
DROP TRIGGER notifier_statuses_copy ON statuses;
DROP TRIGGER notifier_statuses_truncate ON statuses;
DROP FUNCTION notifier.copy_status();
DROP TABLE notifier.status_names;

ALTER TABLE notifier.pending RENAME COLUMN tbl TO rule;
ALTER TABLE notifier.events ADD COLUMN old_data jsonb;

CREATE TABLE notifier.rules (
    name           text PRIMARY KEY,
    tbl            text NOT NULL,
    key_column     text NOT NULL,
    account_column text NOT NULL
);

CREATE TABLE notifier.rule_events (
    name     text PRIMARY KEY,
    rule     text NOT NULL REFERENCES notifier.rules ON DELETE CASCADE,
    ord      integer NOT NULL,
    op       text NOT NULL CHECK (op IN ('insert', 'update', 'delete')),
    alias_of text
);

-- The lists dashboards load before they follow (GET /v1/snapshot/<name>); each has a
-- function notifier."list_<name>"(account, max) made by its rules migration.
CREATE TABLE notifier.lists (
    name      text PRIMARY KEY,
    rule      text NOT NULL REFERENCES notifier.rules,
    page_size integer NOT NULL CHECK (page_size BETWEEN 1 AND 1000)
);

CREATE TYPE notifier.derived AS (
    first_seq  bigint,
    ord        integer,
    event      text,
    row_id     bigint,
    account_id bigint,
    row_data   jsonb,
    old_data   jsonb
);

CREATE TABLE notifier.lookups (
    tbl   text   NOT NULL,
    key   bigint NOT NULL,
    value text,
    PRIMARY KEY (tbl, key)
);

-- lookup(table, key): the mirrored value (a status's name), for rule conditions.
CREATE FUNCTION notifier.lookup(tbl text, key bigint)
RETURNS text
LANGUAGE sql STABLE
AS $$
    SELECT l.value FROM notifier.lookups l WHERE l.tbl OPERATOR(pg_catalog.=) $1 AND l.key OPERATOR(pg_catalog.=) $2
$$;
REVOKE ALL ON FUNCTION notifier.lookup(text, bigint) FROM PUBLIC;

-- copy_lookup(table, key column, value column): keeps a lookup's mirror. Reads only OLD
-- and NEW.
CREATE FUNCTION notifier.copy_lookup()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        DELETE FROM notifier.lookups WHERE tbl = TG_ARGV[0];
        RETURN NULL;
    END IF;
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        DELETE FROM notifier.lookups WHERE tbl = TG_ARGV[0] AND key = (to_jsonb(OLD) ->> TG_ARGV[1])::bigint;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') AND (to_jsonb(NEW) ->> TG_ARGV[1]) IS NOT NULL THEN
        INSERT INTO notifier.lookups (tbl, key, value)
        VALUES (TG_ARGV[0], (to_jsonb(NEW) ->> TG_ARGV[1])::bigint, to_jsonb(NEW) ->> TG_ARGV[2])
        ON CONFLICT (tbl, key) DO UPDATE SET value = EXCLUDED.value;
    END IF;
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION notifier.copy_lookup() FROM PUBLIC;

-- check_columns(rule, table, name, columns, integer columns): a rules migration's
-- first step for each rule, refusing (with the rule's name) a table or column that
-- does not exist or an id or account column that is not an integer. The caller
-- resolves the table (to_regclass, NULL when missing) on its own search_path.
CREATE FUNCTION notifier.check_columns(rule text, rel regclass, tbl text, cols text[], int_cols text[])
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    who text := CASE WHEN rule = '' THEN 'lookup ' || tbl ELSE format('rule "%s"', rule) END;
    c   text;
    typ regtype;
BEGIN
    IF rel IS NULL THEN
        RAISE EXCEPTION '%: table % does not exist', who, tbl;
    END IF;
    FOREACH c IN ARRAY cols || int_cols LOOP
        SELECT a.atttypid::regtype INTO typ FROM pg_attribute a
        WHERE a.attrelid = rel AND a.attname = c AND a.attnum > 0 AND NOT a.attisdropped;
        IF typ IS NULL THEN
            RAISE EXCEPTION '%: table % has no column "%"', who, tbl, c;
        END IF;
        IF c = ANY (int_cols) AND typ NOT IN ('smallint'::regtype, 'integer'::regtype, 'bigint'::regtype) THEN
            RAISE EXCEPTION '%: column "%" of % is %, not an integer', who, c, tbl, typ;
        END IF;
    END LOOP;
END
$$;

-- create_function(rule, table, definition): runs a rule's CREATE FUNCTION with
-- __NOTIFIER_TABLE__ and __NOTIFIER_SCHEMA__ replaced by the table's schema-qualified
-- name and its schema, as resolved now: a rule file may name a table without its
-- schema, as the app does, and the functions still never depend on a search_path.
CREATE FUNCTION notifier.create_function(rule text, rel regclass, definition text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    schema text;
    name   text;
BEGIN
    SELECT quote_ident(n.nspname), quote_ident(c.relname) INTO schema, name
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = rel;
    IF schema IS NULL THEN
        RAISE EXCEPTION 'rule "%": its table does not exist', rule;
    END IF;
    BEGIN
        EXECUTE replace(replace(definition, '__NOTIFIER_TABLE__', schema || '.' || name), '__NOTIFIER_SCHEMA__', schema);
    EXCEPTION WHEN OTHERS THEN
        RAISE EXCEPTION 'rule "%": %: %', rule,
            CASE WHEN strpos(definition, 'RETURNS SETOF notifier.derived') > 0 THEN 'where or when condition' ELSE 'enrich' END,
            SQLERRM;
    END;
END
$$;

-- check_rule(rule): runs the rule's functions once on nothing, so that PostgreSQL plans
-- them now: a condition or an enrichment query that does not parse, names a column or
-- table that does not exist, or does not return (id, payload) fails the migration here.
CREATE FUNCTION notifier.check_rule(rule text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    BEGIN
        EXECUTE format('SELECT count(*) FROM notifier.%I()', 'derive_' || rule);
    EXCEPTION WHEN OTHERS THEN
        RAISE EXCEPTION 'rule "%": where or when condition: %', rule, SQLERRM;
    END;
    BEGIN
        EXECUTE format('SELECT count(*) FROM notifier.%I(''{}''::bigint[])', 'enrich_' || rule);
    EXCEPTION WHEN undefined_column THEN
        RAISE EXCEPTION 'rule "%": enrich must return columns id (the event id) and payload (json): %', rule, SQLERRM;
    WHEN OTHERS THEN
        RAISE EXCEPTION 'rule "%": enrich: %', rule, SQLERRM;
    END;
END
$$;
-- check_list(list): plans the list's function once on nothing, so a where or order
-- that names what does not exist fails the migration, naming the list.
CREATE FUNCTION notifier.check_list(list text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    EXECUTE format('SELECT count(*) FROM notifier.%I(0, 0)', 'list_' || list);
EXCEPTION WHEN OTHERS THEN
    RAISE EXCEPTION 'list "%": %', list, SQLERRM;
END
$$;
REVOKE ALL ON FUNCTION notifier.check_list(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION notifier.check_columns(text, regclass, text, text[], text[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION notifier.create_function(text, regclass, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION notifier.check_rule(text) FROM PUBLIC;

-- derive(): no rules yet; each rules migration rewrites it.
CREATE FUNCTION notifier.derive()
RETURNS SETOF notifier.derived
LANGUAGE plpgsql
AS $$
BEGIN
    RETURN;
END
$$;
REVOKE ALL ON FUNCTION notifier.derive() FROM PUBLIC;

-- capture(rule, key column): stages one change of a rule's table. Reads nothing but
-- OLD and NEW. The first change a transaction stages (since its last flush) opens a
-- flush: its pending row queues notifier_flush, which PostgreSQL fires after every
-- deferred trigger queued before it.
CREATE OR REPLACE FUNCTION notifier.capture()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    -- Marked with this transaction's id, not a constant: a session that sets the
    -- variable itself cannot make its own transactions skip their flush.
    xact  text    := pg_current_xact_id()::text;
    opens boolean := current_setting('notifier.flush_queued', true) IS DISTINCT FROM xact;
    o     jsonb;
    n     jsonb;
    id    bigint;
BEGIN
    IF TG_OP <> 'INSERT' THEN
        o := to_jsonb(OLD);
    END IF;
    IF TG_OP <> 'DELETE' THEN
        n := to_jsonb(NEW);
    END IF;
    id := (coalesce(n, o) ->> TG_ARGV[1])::bigint;
    IF id IS NULL THEN
        RETURN NULL; -- no row id, no event (and never a failed commit)
    END IF;
    IF opens THEN
        PERFORM set_config('notifier.flush_queued', xact, true);
    END IF;
    INSERT INTO notifier.pending (seq, rule, row_id, old_row, new_row, opens_flush)
    VALUES (nextval('notifier.pending_seq'), TG_ARGV[0], id, o, n, opens);
    RETURN NULL;
END
$$;

-- flush: the events of the transaction's net effect per row, in the order the rows
-- were first changed. Only a flush that writes events takes the lock.
CREATE OR REPLACE FUNCTION notifier.flush()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    ev      record;
    new_id  bigint;
    locked  boolean := false;
BEGIN
    PERFORM set_config('notifier.flush_queued', '', true); -- a later change opens another flush
    FOR ev IN SELECT * FROM notifier.derive() d ORDER BY d.first_seq, d.ord LOOP
        IF NOT locked THEN
            -- Released only after the commit is visible: ids are drawn in commit order.
            LOCK TABLE notifier.commit_lock IN EXCLUSIVE MODE;
            locked := true;
            -- Deferred triggers fire at COMMIT, inside the COMMIT statement (or the single
            -- statement of an implicit transaction). Anything else means the app made them
            -- immediate (SET CONSTRAINTS ALL IMMEDIATE): the lock is then held until its
            -- transaction ends, and every other event commit waits. Say so.
            IF statement_timestamp() <> transaction_timestamp()
               AND current_query() !~* '^\s*(commit|end)\M' THEN
                RAISE WARNING 'notifier: events written before COMMIT (SET CONSTRAINTS ALL IMMEDIATE?): other event commits wait until this transaction ends'
                    USING HINT = 'Leave the notifier_* constraint triggers deferred; see the DBA guide in the README.';
            END IF;
        END IF;
        new_id := nextval('notifier.events_id_seq');
        INSERT INTO notifier.events (id, event, row_id, account_id, row_data, old_data)
        VALUES (new_id, ev.event, ev.row_id, ev.account_id, ev.row_data, ev.old_data);
    END LOOP;
    DELETE FROM notifier.pending WHERE xid = pg_current_xact_id();
    IF locked THEN
        -- One wake-up per transaction: the listener reads the log from its cursor anyway.
        PERFORM pg_notify('notifier', notifier.payload(new_id, ev.event, ev.row_id, ev.account_id));
    END IF;
    RETURN NULL;
END
$$;
