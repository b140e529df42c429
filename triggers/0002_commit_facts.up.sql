-- notifier 0002: events describe what committed, and nothing the app owns runs with the
-- notifier's rights.
--
-- What changes (docs/design.md §1 explains why each is needed):
--   notifier.events.row_data     the row as it was at COMMIT (as JSON): replays and late
--                                enrichment send the facts of the commit, not the present
--   notifier.pending             UNLOGGED staging: one row per change of a clinic row, written
--                                by the capture triggers at COMMIT, consumed by the flush in
--                                the same transaction (never visible to anyone else)
--   notifier.status_names        a copy of statuses (id, name), kept by a trigger, so that
--                                the flush never reads a table the app owns
--   notifier.commit_lock         an empty table whose lock orders commits; only its owner can
--                                take it (an advisory lock anyone could take and hold)
--   notifier.capture()           deferred row trigger on appointments and doctors: stages
--                                OLD/NEW of every INSERT, UPDATE and DELETE
--   notifier.flush()             deferred trigger on notifier.pending: runs after every
--                                deferred trigger the app had queued, derives each row's net
--                                effect (first OLD, last NEW), locks commit_lock, draws ids,
--                                writes the log rows and sends one NOTIFY per transaction
--   notifier.rebase(seen)        after the log went back (a crash with asynchronous commit, a
--                                failover, a restore): void every id up to seen, draw above it
--   ids start at the install time in microseconds, so a reinstalled log never reuses an id
--   a TRUNCATE of notifier.events voids every id drawn so far, the same way
-- Removed: the 0001 trigger functions and triggers (appointment_created, appointment_checkin,
-- doctor_created, append) and the public advisory lock they took.

-- The facts of the commit.
ALTER TABLE notifier.events ADD COLUMN row_data jsonb;

-- Staging. UNLOGGED: its rows live only inside the writing transaction (inserted and deleted
-- by it before it commits), so there is nothing to recover after a crash.
CREATE SEQUENCE notifier.pending_seq AS bigint;
CREATE UNLOGGED TABLE notifier.pending (
    xid        xid8    NOT NULL DEFAULT pg_catalog.pg_current_xact_id(),
    seq        bigint  NOT NULL,
    tbl        text    NOT NULL,
    row_id     bigint  NOT NULL,
    old_row    jsonb,
    new_row    jsonb,
    opens_flush boolean NOT NULL
);
CREATE INDEX pending_xid_idx ON notifier.pending (xid);

CREATE TABLE notifier.status_names (
    id   bigint PRIMARY KEY,
    name text   NOT NULL
);
INSERT INTO notifier.status_names (id, name) SELECT id, name FROM statuses;

CREATE TABLE notifier.commit_lock ();

-- Ids: never below the install time in microseconds (about 1.8e15 in 2026, far below 2^53,
-- so JavaScript clients read them exactly). On a fresh log, everything below is void, so a
-- client of a previous install resumes with resync.
SELECT pg_catalog.setval('notifier.events_id_seq',
    greatest((SELECT last_value FROM notifier.events_id_seq),
             (extract(epoch FROM pg_catalog.clock_timestamp()) * 1000000)::bigint));
UPDATE notifier.log_state SET pruned_through = (SELECT last_value FROM notifier.events_id_seq)
WHERE NOT EXISTS (SELECT 1 FROM notifier.events);

DROP TRIGGER notifier_appointments_created ON appointments;
DROP TRIGGER notifier_appointments_checkin ON appointments;
DROP TRIGGER notifier_doctors_created ON doctors;
DROP FUNCTION notifier.appointment_created();
DROP FUNCTION notifier.appointment_checkin();
DROP FUNCTION notifier.doctor_created();
DROP FUNCTION notifier.append(text, bigint, bigint);

-- Qualified operators: a role that can create in a schema on the reader's search_path must
-- not be able to define a better-matching || and rewrite payloads.
CREATE OR REPLACE FUNCTION notifier.payload(id bigint, event text, row_id bigint, account_id bigint)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT '{"id":' OPERATOR(pg_catalog.||) id::text OPERATOR(pg_catalog.||) ',"event":"'
        OPERATOR(pg_catalog.||) event OPERATOR(pg_catalog.||) '","row":' OPERATOR(pg_catalog.||) row_id::text
        OPERATOR(pg_catalog.||) ',"account":' OPERATOR(pg_catalog.||) account_id::text OPERATOR(pg_catalog.||) '}'
$$;

-- capture(table): stages one change. Reads nothing but OLD and NEW. The first change a
-- transaction stages (since its last flush) opens a flush: its pending row queues
-- notifier_flush, which PostgreSQL fires after every deferred trigger queued before it.
CREATE FUNCTION notifier.capture()
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
REVOKE ALL ON FUNCTION notifier.capture() FROM PUBLIC;

-- flush: the transaction's net effect per row (its state before the transaction: the OLD
-- of its first change; at commit: the NEW of its last), the events that effect makes, in
-- the order the rows were first changed. Only a flush that writes events takes the lock.
CREATE FUNCTION notifier.flush()
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
REVOKE ALL ON FUNCTION notifier.flush() FROM PUBLIC;

CREATE CONSTRAINT TRIGGER notifier_flush
    AFTER INSERT ON notifier.pending
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW WHEN (NEW.opens_flush)
    EXECUTE FUNCTION notifier.flush();

CREATE CONSTRAINT TRIGGER notifier_appointments_capture
    AFTER INSERT OR UPDATE OR DELETE ON appointments
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION notifier.capture('appointments');

CREATE CONSTRAINT TRIGGER notifier_doctors_capture
    AFTER INSERT OR UPDATE OR DELETE ON doctors
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION notifier.capture('doctors');

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

-- rebase(seen): every id at or below seen becomes void (resuming clients get resync) and
-- the next id is drawn above it. Called by the service when the log no longer holds an
-- entry it delivered; grant EXECUTE to the runtime role (see the README).
CREATE FUNCTION notifier.rebase(seen bigint)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    LOCK TABLE notifier.commit_lock IN EXCLUSIVE MODE;
    PERFORM setval('notifier.events_id_seq', greatest(seen, (SELECT last_value FROM notifier.events_id_seq)));
    UPDATE notifier.log_state SET pruned_through = greatest(pruned_through, seen);
END
$$;
REVOKE ALL ON FUNCTION notifier.rebase(bigint) FROM PUBLIC;

-- TRUNCATE notifier.events (RESTART IDENTITY or not) voids every id drawn so far.
CREATE FUNCTION notifier.truncated()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    floor bigint := (extract(epoch FROM clock_timestamp()) * 1000000)::bigint;
BEGIN
    UPDATE notifier.log_state SET pruned_through = greatest(pruned_through, floor);
    PERFORM setval('notifier.events_id_seq', (SELECT pruned_through FROM notifier.log_state));
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION notifier.truncated() FROM PUBLIC;

CREATE TRIGGER notifier_events_truncated
    AFTER TRUNCATE ON notifier.events
    FOR EACH STATEMENT EXECUTE FUNCTION notifier.truncated();
