-- notifier 0003 down: back to 0002. Drops the rule machinery (0004's down has already
-- removed the clinic's rules) and puts back 0002's functions and triggers, verbatim.
DROP FUNCTION notifier.check_rule(text);
DROP FUNCTION notifier.check_list(text);
DROP TABLE notifier.lists;
DROP FUNCTION notifier.check_columns(text, regclass, text, text[], text[]);
DROP FUNCTION notifier.create_function(text, regclass, text);
DROP FUNCTION notifier.copy_lookup();
DROP FUNCTION notifier.lookup(text, bigint);
DROP TABLE notifier.lookups;
DROP TABLE notifier.rule_events;
DROP TABLE notifier.rules;
ALTER TABLE notifier.events DROP COLUMN old_data;
ALTER TABLE notifier.pending RENAME COLUMN rule TO tbl;

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
    FOR ev IN
        WITH mine AS (
            DELETE FROM notifier.pending WHERE xid = pg_current_xact_id()
            RETURNING seq, tbl, row_id, old_row, new_row
        ), net AS (
            SELECT tbl, row_id, min(seq) AS first_seq,
                   (array_agg(old_row ORDER BY seq))[1] AS before,
                   (array_agg(new_row ORDER BY seq DESC))[1] AS after
            FROM mine GROUP BY tbl, row_id
        )
        SELECT k.event, n.row_id, (n.after ->> 'accountId')::bigint AS account_id, n.after AS row_data
        FROM net n
        CROSS JOIN LATERAL (VALUES
            (1, 'appointments.created', n.tbl = 'appointments' AND n.before IS NULL),
            (2, 'appointments.checkin', n.tbl = 'appointments' AND n.before IS NOT NULL
                AND (n.after ->> 'statusId') IS DISTINCT FROM (n.before ->> 'statusId')
                AND EXISTS (SELECT 1 FROM notifier.status_names s
                            WHERE s.id = (n.after ->> 'statusId')::bigint AND s.name = 'Check-in')),
            (3, 'doctors.created', n.tbl = 'doctors' AND n.before IS NULL)
        ) AS k(ord, event, happened)
        WHERE k.happened AND n.after IS NOT NULL AND (n.after ->> 'accountId') IS NOT NULL
        ORDER BY n.first_seq, k.ord
    LOOP
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
        INSERT INTO notifier.events (id, event, row_id, account_id, row_data)
        VALUES (new_id, ev.event, ev.row_id, ev.account_id, ev.row_data);
    END LOOP;
    IF locked THEN
        -- One wake-up per transaction: the listener reads the log from its cursor anyway.
        PERFORM pg_notify('notifier', notifier.payload(new_id, ev.event, ev.row_id, ev.account_id));
    END IF;
    RETURN NULL;
END
$$;
DROP FUNCTION notifier.derive();
DROP TYPE notifier.derived;

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
BEGIN
    IF opens THEN
        PERFORM set_config('notifier.flush_queued', xact, true);
    END IF;
    IF TG_OP = 'INSERT' THEN
        INSERT INTO notifier.pending (seq, tbl, row_id, old_row, new_row, opens_flush)
        VALUES (nextval('notifier.pending_seq'), TG_ARGV[0], NEW.id, NULL, to_jsonb(NEW), opens);
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO notifier.pending (seq, tbl, row_id, old_row, new_row, opens_flush)
        VALUES (nextval('notifier.pending_seq'), TG_ARGV[0], NEW.id, to_jsonb(OLD), to_jsonb(NEW), opens);
    ELSE
        INSERT INTO notifier.pending (seq, tbl, row_id, old_row, new_row, opens_flush)
        VALUES (nextval('notifier.pending_seq'), TG_ARGV[0], OLD.id, to_jsonb(OLD), NULL, opens);
    END IF;
    RETURN NULL;
END
$$;

CREATE TABLE notifier.status_names (
    id   bigint PRIMARY KEY,
    name text   NOT NULL
);
INSERT INTO notifier.status_names (id, name) SELECT id, name FROM statuses;

-- The copy of statuses. Reads only OLD and NEW.
CREATE FUNCTION notifier.copy_status()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        DELETE FROM notifier.status_names;
        RETURN NULL;
    END IF;
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        DELETE FROM notifier.status_names WHERE id = OLD.id;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO notifier.status_names (id, name) VALUES (NEW.id, NEW.name)
        ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name;
    END IF;
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION notifier.copy_status() FROM PUBLIC;

CREATE TRIGGER notifier_statuses_copy
    AFTER INSERT OR UPDATE OR DELETE ON statuses
    FOR EACH ROW EXECUTE FUNCTION notifier.copy_status();
CREATE TRIGGER notifier_statuses_truncate
    AFTER TRUNCATE ON statuses
    FOR EACH STATEMENT EXECUTE FUNCTION notifier.copy_status();

CREATE CONSTRAINT TRIGGER notifier_appointments_capture
    AFTER INSERT OR UPDATE OR DELETE ON appointments
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION notifier.capture('appointments');

CREATE CONSTRAINT TRIGGER notifier_doctors_capture
    AFTER INSERT OR UPDATE OR DELETE ON doctors
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION notifier.capture('doctors');
