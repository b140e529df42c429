-- notifier 0001: the event log and the triggers that fill it.
--
-- What this installs (everything but the three triggers lives in schema "notifier"):
--   notifier.events             durable log, one row per event, id = commit order
--   notifier.log_state          one row: pruned_through (ids at or below it may be gone)
--   notifier.events_id_seq      event ids, drawn only at COMMIT under a lock (see append)
--   notifier.payload()          the NOTIFY payload format (also used to read the log back)
--   notifier.append()           lock, draw an id, insert the log row, NOTIFY channel "notifier"
--   notifier.appointment_created(), notifier.appointment_checkin(), notifier.doctor_created()
--   triggers notifier_appointments_created, notifier_appointments_checkin on appointments
--            notifier_doctors_created on doctors
--
-- The triggers are DEFERRABLE INITIALLY DEFERRED constraint triggers: they run when the
-- writing transaction commits, not when it inserts. A transaction that stays open holds
-- nothing of ours, so it never blocks another writer or delays its events. At commit,
-- append() takes a transaction-scoped advisory lock that PostgreSQL releases only after
-- the commit is visible, and draws the event id under it: ids are therefore in commit
-- order, and a reader that sees id N committed can already see every id below N that
-- will ever commit. NOTIFY, queued while the lock is held, arrives in the same order.
-- The trigger functions are SECURITY DEFINER: the application's role needs no privilege on
-- schema notifier.
CREATE SCHEMA IF NOT EXISTS notifier;

CREATE SEQUENCE notifier.events_id_seq AS bigint;

CREATE TABLE notifier.events (
    id         bigint      PRIMARY KEY,
    event      text        NOT NULL,
    row_id     bigint      NOT NULL,
    account_id bigint      NOT NULL,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
ALTER SEQUENCE notifier.events_id_seq OWNED BY notifier.events.id;

-- Replay for one account (?since, Socket.IO recovery) and pruning by age.
CREATE INDEX events_account_id_idx ON notifier.events (account_id, id);
CREATE INDEX events_created_at_idx ON notifier.events USING brin (created_at);

CREATE TABLE notifier.log_state (
    singleton      boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    pruned_through bigint  NOT NULL DEFAULT 0
);
INSERT INTO notifier.log_state DEFAULT VALUES;

CREATE FUNCTION notifier.payload(id bigint, event text, row_id bigint, account_id bigint)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT '{"id":' || id || ',"event":"' || event || '","row":' || row_id
        || ',"account":' || account_id || '}'
$$;

-- Called only by the trigger functions below, which already run as the owner with a
-- fixed search_path: no SECURITY DEFINER or SET of its own (each costs a context switch
-- per row, inside the critical section), and no EXECUTE for anyone else.
CREATE FUNCTION notifier.append(event text, row_id bigint, account_id bigint)
RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    new_id bigint;
BEGIN
    -- 7957695015192261490 is "notifier" in ASCII. Held until after COMMIT is visible.
    PERFORM pg_advisory_xact_lock(7957695015192261490);
    new_id := nextval('notifier.events_id_seq');
    INSERT INTO notifier.events (id, event, row_id, account_id)
    VALUES (new_id, append.event, append.row_id, append.account_id);
    PERFORM pg_notify('notifier', notifier.payload(new_id, append.event, append.row_id, append.account_id));
END
$$;
REVOKE ALL ON FUNCTION notifier.append(text, bigint, bigint) FROM PUBLIC;

CREATE FUNCTION notifier.appointment_created()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NEW."accountId" IS NOT NULL THEN
        PERFORM notifier.append('appointments.created', NEW.id, NEW."accountId");
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION notifier.appointment_checkin()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    checkin boolean;
BEGIN
    IF NEW."accountId" IS NULL THEN
        RETURN NULL;
    END IF;
    -- statuses lives beside appointments, whatever that schema is called.
    EXECUTE format('SELECT EXISTS (SELECT 1 FROM %I.statuses WHERE id = $1 AND name = %L)',
                   TG_TABLE_SCHEMA, 'Check-in')
       INTO checkin USING NEW."statusId";
    IF checkin THEN
        PERFORM notifier.append('appointments.checkin', NEW.id, NEW."accountId");
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION notifier.doctor_created()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NEW."accountId" IS NOT NULL THEN
        PERFORM notifier.append('doctors.created', NEW.id, NEW."accountId");
    END IF;
    RETURN NULL;
END
$$;

CREATE CONSTRAINT TRIGGER notifier_appointments_created
    AFTER INSERT ON appointments
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION notifier.appointment_created();

CREATE CONSTRAINT TRIGGER notifier_appointments_checkin
    AFTER UPDATE OF "statusId" ON appointments
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW
    WHEN (NEW."statusId" IS DISTINCT FROM OLD."statusId")
    EXECUTE FUNCTION notifier.appointment_checkin();

CREATE CONSTRAINT TRIGGER notifier_doctors_created
    AFTER INSERT ON doctors
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION notifier.doctor_created();
