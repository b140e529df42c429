-- notifier 0002 down: back to 0001. Drops what 0002 added (the log's row_data column
-- with it) and puts back 0001's functions and triggers, verbatim. Ids keep counting from
-- where they are: they never go back.
DROP TRIGGER IF EXISTS notifier_appointments_capture ON appointments;
DROP TRIGGER IF EXISTS notifier_doctors_capture ON doctors;
DROP TRIGGER IF EXISTS notifier_statuses_copy ON statuses;
DROP TRIGGER IF EXISTS notifier_statuses_truncate ON statuses;
DROP TRIGGER IF EXISTS notifier_events_truncated ON notifier.events;
DROP TABLE IF EXISTS notifier.pending;
DROP SEQUENCE IF EXISTS notifier.pending_seq;
DROP TABLE IF EXISTS notifier.status_names;
DROP TABLE IF EXISTS notifier.commit_lock;
DROP FUNCTION IF EXISTS notifier.capture();
DROP FUNCTION IF EXISTS notifier.flush();
DROP FUNCTION IF EXISTS notifier.copy_status();
DROP FUNCTION IF EXISTS notifier.rebase(bigint);
DROP FUNCTION IF EXISTS notifier.truncated();
ALTER TABLE notifier.events DROP COLUMN IF EXISTS row_data;

CREATE OR REPLACE FUNCTION notifier.payload(id bigint, event text, row_id bigint, account_id bigint)
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
