-- notifier rules: {"rules":[{"name":"appointments","table":"appointments","key":"id","account":"accountId","soft_delete":"deletedAt","enrich":"-- Enrichment of the clinic rule \"appointments\" (triggers/clinic.yaml): one row (id,\n-- payload) per row of ev, the payload in the seed contract (000, 001). ev (id,\n-- account_id, event, r, o) is what the rule's functions give it: the burst's events\n-- (r the row as committed, o the row before for events that keep it) or a snapshot's\n-- rows (r the row now, no o), so live events and snapshots share this one query. An event\n-- that kept the row before its update (appointments.status.changed) also carries\n-- previousStatus, the status it changed from.\n--\n-- The appointment's own columns come from r: for an event, as of its commit, whatever\n-- happened to the row since. Its status is the one it had\n-- then (looked up by that statusId); doctor, patient, contact and procedure are read now,\n-- and only when they belong to the event's account (procedures may also be shared, with no\n-- account): no path returns another clinic's rows.\n--\n-- Timestamps are UTC ISO-8601 with milliseconds (the pool's session TimeZone is UTC;\n-- a timestamp column's JSON has no offset and is taken as UTC, a timestamptz column's\n-- carries its offset); prices drop trailing fractional zeros.\n--\n-- Set-based: the first procedure link of every appointment of the burst is found in one\n-- pass (DISTINCT ON), an index range with the index the README recommends on\n-- (\"appointmentId\", id). The rows looked up by primary key (doctor, patient, contact,\n-- statuses, procedure) are LATERAL ... LIMIT 1: the function's cached generic plan then\n-- probes them per event instead of hashing each table per burst (0.78 -\u003e 0.42 ms of\n-- server time for a one-event burst on the reference data).\n--\n-- Functions are schema-qualified: a role that can create objects in a schema on the\n-- session's search_path must not be able to shadow them with a better-matching overload.\nWITH first_link AS (\n    SELECT DISTINCT ON (ev.id) ev.id AS event_id, ap.id, ap.\"procedureId\"\n    FROM ev\n    JOIN appointment_procedures ap ON ap.\"appointmentId\" = (ev.r -\u003e\u003e 'id')::bigint\n    ORDER BY ev.id, ap.id\n)\nSELECT ev.id,\n       CASE WHEN ev.o IS NULL THEN a.payload ELSE (pg_catalog.left(a.payload::text, -1)\n           OPERATOR(pg_catalog.||) ',\"previousStatus\":'\n           OPERATOR(pg_catalog.||) coalesce(pg_catalog.json_build_object('id', ps.id, 'name', ps.name, 'color', ps.color)::text, 'null')\n           OPERATOR(pg_catalog.||) '}')::json END AS payload\nFROM ev\nLEFT JOIN LATERAL (SELECT d.* FROM doctors d WHERE d.id = (ev.r -\u003e\u003e 'doctorId')::bigint AND d.\"accountId\" = ev.account_id LIMIT 1) d ON true\nLEFT JOIN LATERAL (SELECT p.* FROM patients p WHERE p.id = (ev.r -\u003e\u003e 'patientId')::bigint AND p.\"accountId\" = ev.account_id LIMIT 1) p ON true\nLEFT JOIN LATERAL (SELECT c.* FROM contacts c WHERE c.id = p.\"contactId\" LIMIT 1) c ON true\nLEFT JOIN LATERAL (SELECT s.* FROM statuses s WHERE s.id = (ev.r -\u003e\u003e 'statusId')::bigint LIMIT 1) s ON true\nLEFT JOIN first_link fl ON fl.event_id = ev.id\nLEFT JOIN LATERAL (SELECT pr.* FROM procedures pr WHERE pr.id = fl.\"procedureId\"\n    AND (pr.\"accountId\" = ev.account_id OR pr.\"accountId\" IS NULL) LIMIT 1) pr ON true\nLEFT JOIN LATERAL (SELECT ps.* FROM statuses ps WHERE ps.id = (ev.o -\u003e\u003e 'statusId')::bigint LIMIT 1) ps ON true\nCROSS JOIN LATERAL (SELECT pg_catalog.json_build_object(\n           'id', ev.r -\u003e 'id',\n           'date', pg_catalog.to_char((ev.r -\u003e\u003e 'date')::timestamptz AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'),\n           'startTime', ev.r -\u003e 'startTime',\n           'endTime', ev.r -\u003e 'endTime',\n           'notes', ev.r -\u003e 'notes',\n           'doctorId', ev.r -\u003e 'doctorId',\n           'patientId', ev.r -\u003e 'patientId',\n           'statusId', ev.r -\u003e 'statusId',\n           'accountId', ev.r -\u003e 'accountId',\n           'createdAt', pg_catalog.to_char((ev.r -\u003e\u003e 'createdAt')::timestamptz AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'),\n           'updatedAt', pg_catalog.to_char((ev.r -\u003e\u003e 'updatedAt')::timestamptz AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'),\n           'deletedAt', pg_catalog.to_char((ev.r -\u003e\u003e 'deletedAt')::timestamptz AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'),\n           'doctor', CASE WHEN d.id IS NOT NULL THEN pg_catalog.json_build_object(\n               'id', d.id,\n               'name', d.name,\n               'crm', d.crm,\n               'email', d.email,\n               'phone', d.phone,\n               'isBusy', d.\"isBusy\",\n               'accountId', d.\"accountId\") END,\n           'patient', CASE WHEN p.id IS NOT NULL THEN pg_catalog.json_build_object(\n               'id', p.id,\n               'name', p.name,\n               'contactId', p.\"contactId\",\n               'accountId', p.\"accountId\",\n               'contact', CASE WHEN c.id IS NOT NULL THEN pg_catalog.json_build_object(\n                   'id', c.id,\n                   'phone', c.phone,\n                   'email', c.email) END) END,\n           'status', CASE WHEN s.id IS NOT NULL THEN pg_catalog.json_build_object(\n               'id', s.id,\n               'name', s.name,\n               'color', s.color) END,\n           'appointmentProcedures', CASE WHEN fl.id IS NOT NULL THEN pg_catalog.json_build_object(\n               'id', fl.id,\n               'procedureId', fl.\"procedureId\",\n               'procedure', CASE WHEN pr.id IS NOT NULL THEN pg_catalog.json_build_object(\n                   'id', pr.id,\n                   'name', pr.name,\n                   'price', pg_catalog.trim_scale(pr.price)::text) END) END\n       ) AS payload) AS a","events":[{"name":"appointments.created","on":"insert"},{"name":"appointments.updated","on":"update"},{"name":"appointments.status.changed","on":"update","when":"old.\"statusId\" IS DISTINCT FROM new.\"statusId\"","keep_old":true},{"name":"appointments.checkin","on":"update","when":"old.\"statusId\" IS DISTINCT FROM new.\"statusId\" AND notifier.lookup('statuses', new.\"statusId\") = 'Check-in'"},{"name":"appointments.serving","on":"update","when":"old.\"statusId\" IS DISTINCT FROM new.\"statusId\" AND notifier.lookup('statuses', new.\"statusId\") = 'Em atendimento'"},{"name":"appointments.finished","on":"update","when":"old.\"statusId\" IS DISTINCT FROM new.\"statusId\" AND notifier.lookup('statuses', new.\"statusId\") = 'Finalizado'"},{"name":"appointments.deleted","on":"delete"}]},{"name":"doctors","table":"doctors","key":"id","account":"accountId","soft_delete":"deletedAt","enrich":"-- Enrichment of the clinic rule \"doctors\" (triggers/clinic.yaml): one row (id, payload)\n-- per row of ev (see appointments.sql), the payload in the seed contract (002). The\n-- doctor's own columns come from r (for an event, as of its commit); doctorProcedures are read now, ordered by the link's id, [] when none, with\n-- only the procedures of the event's account (or shared ones, with no account).\n-- Set-based: the links of every doctor of the burst are aggregated in one pass.\n--\n-- Functions are schema-qualified: a role that can create objects in a schema on the\n-- session's search_path must not be able to shadow them with a better-matching overload.\nWITH links AS (\n    SELECT ev.id AS event_id,\n           pg_catalog.json_agg(pg_catalog.json_build_object(\n               'id', dp.id,\n               'procedureId', dp.\"procedureId\",\n               'procedure', CASE WHEN pr.id IS NOT NULL THEN pg_catalog.json_build_object(\n                   'id', pr.id,\n                   'name', pr.name,\n                   'price', pg_catalog.trim_scale(pr.price)::text) END)\n           ORDER BY dp.id) AS procs\n    FROM ev\n    JOIN doctor_procedures dp ON dp.\"doctorId\" = (ev.r -\u003e\u003e 'id')::bigint\n    LEFT JOIN procedures pr ON pr.id = dp.\"procedureId\"\n        AND (pr.\"accountId\" = ev.account_id OR pr.\"accountId\" IS NULL)\n    GROUP BY ev.id\n)\nSELECT ev.id,\n       pg_catalog.json_build_object(\n           'id', ev.r -\u003e 'id',\n           'name', ev.r -\u003e 'name',\n           'crm', ev.r -\u003e 'crm',\n           'email', ev.r -\u003e 'email',\n           'phone', ev.r -\u003e 'phone',\n           'isBusy', ev.r -\u003e 'isBusy',\n           'accountId', ev.r -\u003e 'accountId',\n           'createdAt', pg_catalog.to_char((ev.r -\u003e\u003e 'createdAt')::timestamptz AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'),\n           'updatedAt', pg_catalog.to_char((ev.r -\u003e\u003e 'updatedAt')::timestamptz AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'),\n           'deletedAt', pg_catalog.to_char((ev.r -\u003e\u003e 'deletedAt')::timestamptz AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'),\n           'doctorProcedures', coalesce(l.procs, '[]'::json)\n       ) AS payload\nFROM ev\nLEFT JOIN links l ON l.event_id = ev.id","events":[{"name":"doctors.created","on":"insert"},{"name":"doctors.updated","on":"update"},{"name":"doctors.busy","on":"update","when":"new.\"isBusy\" AND NOT coalesce(old.\"isBusy\", false)"},{"name":"doctors.deleted","on":"delete"}]}],"lookups":[{"table":"statuses","key":"id","value":"name"}],"lists":[{"name":"appointments.today","rule":"appointments","where":"date \u003e= date_trunc('day', now() AT TIME ZONE 'UTC') AND date \u003c date_trunc('day', now() AT TIME ZONE 'UTC') + interval '1 day'","order":"date, \"startTime\", id","limit":200},{"name":"appointments.checkin","rule":"appointments","where":"\"statusId\" IN (SELECT s.id FROM statuses s WHERE s.name = 'Check-in')","order":"\"updatedAt\", id","limit":200},{"name":"doctors","rule":"doctors","order":"name, id","limit":200}]}
-- notifier needs: OWNER appointments, OWNER doctors, OWNER statuses
-- Generated by `notifier rules sql`: review it, keep it, never edit it once applied
-- (a change of rules is a new migration). The first line records the rule set this
-- file leaves installed.

-- Lookup statuses: notifier.lookup('statuses', id) returns its name, for conditions.
SELECT notifier.check_columns('', pg_catalog.to_regclass('"statuses"'), 'statuses', ARRAY['name'], ARRAY['id']);
INSERT INTO notifier.lookups (tbl, key, value)
SELECT 'statuses', "id", "name"::text FROM "statuses";
CREATE TRIGGER notifier_lookup_copy
    AFTER INSERT OR UPDATE OR DELETE ON "statuses"
    FOR EACH ROW EXECUTE FUNCTION notifier.copy_lookup('statuses', 'id', 'name');
CREATE TRIGGER notifier_lookup_truncate
    AFTER TRUNCATE ON "statuses"
    FOR EACH STATEMENT EXECUTE FUNCTION notifier.copy_lookup('statuses', 'id', 'name');

-- Rule appointments: appointments publishes appointments.created, appointments.updated, appointments.status.changed, appointments.checkin, appointments.serving, appointments.finished, appointments.deleted to the account in column accountId.
SELECT notifier.check_columns('appointments', pg_catalog.to_regclass('"appointments"'), 'appointments', ARRAY['deletedAt']::text[], ARRAY['id', 'accountId']);
INSERT INTO notifier.rules (name, tbl, key_column, account_column) VALUES ('appointments', 'appointments', 'id', 'accountId');
INSERT INTO notifier.rule_events (name, rule, ord, op, alias_of) VALUES
    ('appointments.created', 'appointments', 1, 'insert', NULL),
    ('appointments.updated', 'appointments', 2, 'update', NULL),
    ('appointments.status.changed', 'appointments', 3, 'update', NULL),
    ('appointments.checkin', 'appointments', 4, 'update', NULL),
    ('appointments.serving', 'appointments', 5, 'update', NULL),
    ('appointments.finished', 'appointments', 6, 'update', NULL),
    ('appointments.deleted', 'appointments', 7, 'delete', NULL);
SELECT notifier.create_function('appointments', pg_catalog.to_regclass('"appointments"'), $notifier_rule$
CREATE FUNCTION notifier."derive_appointments"()
RETURNS SETOF notifier.derived
LANGUAGE plpgsql
AS $body$
BEGIN
RETURN QUERY
WITH net AS (
    SELECT p.row_id, min(p.seq) AS first_seq,
           (array_agg(p.old_row ORDER BY p.seq))[1] AS b,
           (array_agg(p.new_row ORDER BY p.seq DESC))[1] AS a
    FROM notifier.pending p
    WHERE p.xid = pg_current_xact_id() AND p.rule = 'appointments'
    GROUP BY p.row_id
), side AS (
    SELECT n.row_id, n.first_seq, n.b, n.a,
           (n.b ->> 'accountId')::bigint AS b_account, (n.a ->> 'accountId')::bigint AS a_account,
           n.b IS NOT NULL AND (n.b ->> 'deletedAt') IS NULL AS b_live,
           n.a IS NOT NULL AND (n.a ->> 'deletedAt') IS NULL AS a_live
    FROM net n
), op AS (
    SELECT s.*,
           s.a_live AND s.a_account IS NOT NULL
               AND NOT (s.b_live AND s.b_account IS NOT DISTINCT FROM s.a_account) AS ins,
           s.b_live AND s.b_account IS NOT NULL
               AND NOT (s.a_live AND s.a_account IS NOT DISTINCT FROM s.b_account) AS del,
           s.b_live AND s.a_live AND s.a_account IS NOT NULL AND s.a_account = s.b_account
               AND s.b IS DISTINCT FROM s.a AS upd,
           CASE WHEN s.a IS NOT NULL AND s.a_account IS NOT DISTINCT FROM s.b_account THEN s.a ELSE s.b END AS gone
    FROM side s
)
SELECT o.first_seq, k.ord, k.event, o.row_id, k.account_id, k.row_data, k.old_data
FROM op o
LEFT JOIN LATERAL pg_catalog.jsonb_populate_record(NULL::__NOTIFIER_TABLE__, o.b) AS old ON o.upd
LEFT JOIN LATERAL pg_catalog.jsonb_populate_record(NULL::__NOTIFIER_TABLE__, o.a) AS new ON o.upd
CROSS JOIN LATERAL (VALUES
    (1, 'appointments.created'::text, o.ins, o.a_account, o.a, NULL::jsonb),
    (2, 'appointments.updated'::text, o.upd, o.a_account, o.a, NULL::jsonb),
    (3, 'appointments.status.changed'::text, o.upd AND (old."statusId" IS DISTINCT FROM new."statusId"), o.a_account, o.a, o.b),
    (4, 'appointments.checkin'::text, o.upd AND (old."statusId" IS DISTINCT FROM new."statusId" AND notifier.lookup('statuses', new."statusId") = 'Check-in'), o.a_account, o.a, NULL::jsonb),
    (5, 'appointments.serving'::text, o.upd AND (old."statusId" IS DISTINCT FROM new."statusId" AND notifier.lookup('statuses', new."statusId") = 'Em atendimento'), o.a_account, o.a, NULL::jsonb),
    (6, 'appointments.finished'::text, o.upd AND (old."statusId" IS DISTINCT FROM new."statusId" AND notifier.lookup('statuses', new."statusId") = 'Finalizado'), o.a_account, o.a, NULL::jsonb),
    (7, 'appointments.deleted'::text, o.del, o.b_account, o.gone, NULL::jsonb)
) AS k(ord, event, happened, account_id, row_data, old_data)
WHERE k.happened;
END
$body$
$notifier_rule$);
REVOKE ALL ON FUNCTION notifier."derive_appointments"() FROM PUBLIC;
SELECT notifier.create_function('appointments', pg_catalog.to_regclass('"appointments"'), $notifier_rule$
CREATE FUNCTION notifier."enrich_appointments"(event_ids bigint[])
RETURNS TABLE (id bigint, payload json)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, __NOTIFIER_SCHEMA__
AS $body$
#variable_conflict use_column
BEGIN
RETURN QUERY WITH ev AS (
    SELECT e.id, e.account_id, e.event, e.row_data AS r, e.old_data AS o
    FROM notifier.events e
    WHERE e.id = ANY (event_ids) AND e.row_data IS NOT NULL
)
SELECT q.id::bigint, q.payload::json FROM (
-- Enrichment of the clinic rule "appointments" (triggers/clinic.yaml): one row (id,
-- payload) per row of ev, the payload in the seed contract (000, 001). ev (id,
-- account_id, event, r, o) is what the rule's functions give it: the burst's events
-- (r the row as committed, o the row before for events that keep it) or a snapshot's
-- rows (r the row now, no o), so live events and snapshots share this one query. An event
-- that kept the row before its update (appointments.status.changed) also carries
-- previousStatus, the status it changed from.
--
-- The appointment's own columns come from r: for an event, as of its commit, whatever
-- happened to the row since. Its status is the one it had
-- then (looked up by that statusId); doctor, patient, contact and procedure are read now,
-- and only when they belong to the event's account (procedures may also be shared, with no
-- account): no path returns another clinic's rows.
--
-- Timestamps are UTC ISO-8601 with milliseconds (the pool's session TimeZone is UTC;
-- a timestamp column's JSON has no offset and is taken as UTC, a timestamptz column's
-- carries its offset); prices drop trailing fractional zeros.
--
-- Set-based: the first procedure link of every appointment of the burst is found in one
-- pass (DISTINCT ON), an index range with the index the README recommends on
-- ("appointmentId", id). The rows looked up by primary key (doctor, patient, contact,
-- statuses, procedure) are LATERAL ... LIMIT 1: the function's cached generic plan then
-- probes them per event instead of hashing each table per burst (0.78 -> 0.42 ms of
-- server time for a one-event burst on the reference data).
--
-- Functions are schema-qualified: a role that can create objects in a schema on the
-- session's search_path must not be able to shadow them with a better-matching overload.
WITH first_link AS (
    SELECT DISTINCT ON (ev.id) ev.id AS event_id, ap.id, ap."procedureId"
    FROM ev
    JOIN appointment_procedures ap ON ap."appointmentId" = (ev.r ->> 'id')::bigint
    ORDER BY ev.id, ap.id
)
SELECT ev.id,
       CASE WHEN ev.o IS NULL THEN a.payload ELSE (pg_catalog.left(a.payload::text, -1)
           OPERATOR(pg_catalog.||) ',"previousStatus":'
           OPERATOR(pg_catalog.||) coalesce(pg_catalog.json_build_object('id', ps.id, 'name', ps.name, 'color', ps.color)::text, 'null')
           OPERATOR(pg_catalog.||) '}')::json END AS payload
FROM ev
LEFT JOIN LATERAL (SELECT d.* FROM doctors d WHERE d.id = (ev.r ->> 'doctorId')::bigint AND d."accountId" = ev.account_id LIMIT 1) d ON true
LEFT JOIN LATERAL (SELECT p.* FROM patients p WHERE p.id = (ev.r ->> 'patientId')::bigint AND p."accountId" = ev.account_id LIMIT 1) p ON true
LEFT JOIN LATERAL (SELECT c.* FROM contacts c WHERE c.id = p."contactId" LIMIT 1) c ON true
LEFT JOIN LATERAL (SELECT s.* FROM statuses s WHERE s.id = (ev.r ->> 'statusId')::bigint LIMIT 1) s ON true
LEFT JOIN first_link fl ON fl.event_id = ev.id
LEFT JOIN LATERAL (SELECT pr.* FROM procedures pr WHERE pr.id = fl."procedureId"
    AND (pr."accountId" = ev.account_id OR pr."accountId" IS NULL) LIMIT 1) pr ON true
LEFT JOIN LATERAL (SELECT ps.* FROM statuses ps WHERE ps.id = (ev.o ->> 'statusId')::bigint LIMIT 1) ps ON true
CROSS JOIN LATERAL (SELECT pg_catalog.json_build_object(
           'id', ev.r -> 'id',
           'date', pg_catalog.to_char((ev.r ->> 'date')::timestamptz AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
           'startTime', ev.r -> 'startTime',
           'endTime', ev.r -> 'endTime',
           'notes', ev.r -> 'notes',
           'doctorId', ev.r -> 'doctorId',
           'patientId', ev.r -> 'patientId',
           'statusId', ev.r -> 'statusId',
           'accountId', ev.r -> 'accountId',
           'createdAt', pg_catalog.to_char((ev.r ->> 'createdAt')::timestamptz AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
           'updatedAt', pg_catalog.to_char((ev.r ->> 'updatedAt')::timestamptz AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
           'deletedAt', pg_catalog.to_char((ev.r ->> 'deletedAt')::timestamptz AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
           'doctor', CASE WHEN d.id IS NOT NULL THEN pg_catalog.json_build_object(
               'id', d.id,
               'name', d.name,
               'crm', d.crm,
               'email', d.email,
               'phone', d.phone,
               'isBusy', d."isBusy",
               'accountId', d."accountId") END,
           'patient', CASE WHEN p.id IS NOT NULL THEN pg_catalog.json_build_object(
               'id', p.id,
               'name', p.name,
               'contactId', p."contactId",
               'accountId', p."accountId",
               'contact', CASE WHEN c.id IS NOT NULL THEN pg_catalog.json_build_object(
                   'id', c.id,
                   'phone', c.phone,
                   'email', c.email) END) END,
           'status', CASE WHEN s.id IS NOT NULL THEN pg_catalog.json_build_object(
               'id', s.id,
               'name', s.name,
               'color', s.color) END,
           'appointmentProcedures', CASE WHEN fl.id IS NOT NULL THEN pg_catalog.json_build_object(
               'id', fl.id,
               'procedureId', fl."procedureId",
               'procedure', CASE WHEN pr.id IS NOT NULL THEN pg_catalog.json_build_object(
                   'id', pr.id,
                   'name', pr.name,
                   'price', pg_catalog.trim_scale(pr.price)::text) END) END
       ) AS payload) AS a
) AS q;
END
$body$
$notifier_rule$);
CREATE CONSTRAINT TRIGGER "notifier_appointments_capture"
    AFTER INSERT OR UPDATE OR DELETE ON "appointments"
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION notifier.capture('appointments', 'id');
SELECT notifier.check_rule('appointments');

-- Rule doctors: doctors publishes doctors.created, doctors.updated, doctors.busy, doctors.deleted to the account in column accountId.
SELECT notifier.check_columns('doctors', pg_catalog.to_regclass('"doctors"'), 'doctors', ARRAY['deletedAt']::text[], ARRAY['id', 'accountId']);
INSERT INTO notifier.rules (name, tbl, key_column, account_column) VALUES ('doctors', 'doctors', 'id', 'accountId');
INSERT INTO notifier.rule_events (name, rule, ord, op, alias_of) VALUES
    ('doctors.created', 'doctors', 1, 'insert', NULL),
    ('doctors.updated', 'doctors', 2, 'update', NULL),
    ('doctors.busy', 'doctors', 3, 'update', NULL),
    ('doctors.deleted', 'doctors', 4, 'delete', NULL);
SELECT notifier.create_function('doctors', pg_catalog.to_regclass('"doctors"'), $notifier_rule$
CREATE FUNCTION notifier."derive_doctors"()
RETURNS SETOF notifier.derived
LANGUAGE plpgsql
AS $body$
BEGIN
RETURN QUERY
WITH net AS (
    SELECT p.row_id, min(p.seq) AS first_seq,
           (array_agg(p.old_row ORDER BY p.seq))[1] AS b,
           (array_agg(p.new_row ORDER BY p.seq DESC))[1] AS a
    FROM notifier.pending p
    WHERE p.xid = pg_current_xact_id() AND p.rule = 'doctors'
    GROUP BY p.row_id
), side AS (
    SELECT n.row_id, n.first_seq, n.b, n.a,
           (n.b ->> 'accountId')::bigint AS b_account, (n.a ->> 'accountId')::bigint AS a_account,
           n.b IS NOT NULL AND (n.b ->> 'deletedAt') IS NULL AS b_live,
           n.a IS NOT NULL AND (n.a ->> 'deletedAt') IS NULL AS a_live
    FROM net n
), op AS (
    SELECT s.*,
           s.a_live AND s.a_account IS NOT NULL
               AND NOT (s.b_live AND s.b_account IS NOT DISTINCT FROM s.a_account) AS ins,
           s.b_live AND s.b_account IS NOT NULL
               AND NOT (s.a_live AND s.a_account IS NOT DISTINCT FROM s.b_account) AS del,
           s.b_live AND s.a_live AND s.a_account IS NOT NULL AND s.a_account = s.b_account
               AND s.b IS DISTINCT FROM s.a AS upd,
           CASE WHEN s.a IS NOT NULL AND s.a_account IS NOT DISTINCT FROM s.b_account THEN s.a ELSE s.b END AS gone
    FROM side s
)
SELECT o.first_seq, k.ord, k.event, o.row_id, k.account_id, k.row_data, k.old_data
FROM op o
LEFT JOIN LATERAL pg_catalog.jsonb_populate_record(NULL::__NOTIFIER_TABLE__, o.b) AS old ON o.upd
LEFT JOIN LATERAL pg_catalog.jsonb_populate_record(NULL::__NOTIFIER_TABLE__, o.a) AS new ON o.upd
CROSS JOIN LATERAL (VALUES
    (1, 'doctors.created'::text, o.ins, o.a_account, o.a, NULL::jsonb),
    (2, 'doctors.updated'::text, o.upd, o.a_account, o.a, NULL::jsonb),
    (3, 'doctors.busy'::text, o.upd AND (new."isBusy" AND NOT coalesce(old."isBusy", false)), o.a_account, o.a, NULL::jsonb),
    (4, 'doctors.deleted'::text, o.del, o.b_account, o.gone, NULL::jsonb)
) AS k(ord, event, happened, account_id, row_data, old_data)
WHERE k.happened;
END
$body$
$notifier_rule$);
REVOKE ALL ON FUNCTION notifier."derive_doctors"() FROM PUBLIC;
SELECT notifier.create_function('doctors', pg_catalog.to_regclass('"doctors"'), $notifier_rule$
CREATE FUNCTION notifier."enrich_doctors"(event_ids bigint[])
RETURNS TABLE (id bigint, payload json)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, __NOTIFIER_SCHEMA__
AS $body$
#variable_conflict use_column
BEGIN
RETURN QUERY WITH ev AS (
    SELECT e.id, e.account_id, e.event, e.row_data AS r, e.old_data AS o
    FROM notifier.events e
    WHERE e.id = ANY (event_ids) AND e.row_data IS NOT NULL
)
SELECT q.id::bigint, q.payload::json FROM (
-- Enrichment of the clinic rule "doctors" (triggers/clinic.yaml): one row (id, payload)
-- per row of ev (see appointments.sql), the payload in the seed contract (002). The
-- doctor's own columns come from r (for an event, as of its commit); doctorProcedures are read now, ordered by the link's id, [] when none, with
-- only the procedures of the event's account (or shared ones, with no account).
-- Set-based: the links of every doctor of the burst are aggregated in one pass.
--
-- Functions are schema-qualified: a role that can create objects in a schema on the
-- session's search_path must not be able to shadow them with a better-matching overload.
WITH links AS (
    SELECT ev.id AS event_id,
           pg_catalog.json_agg(pg_catalog.json_build_object(
               'id', dp.id,
               'procedureId', dp."procedureId",
               'procedure', CASE WHEN pr.id IS NOT NULL THEN pg_catalog.json_build_object(
                   'id', pr.id,
                   'name', pr.name,
                   'price', pg_catalog.trim_scale(pr.price)::text) END)
           ORDER BY dp.id) AS procs
    FROM ev
    JOIN doctor_procedures dp ON dp."doctorId" = (ev.r ->> 'id')::bigint
    LEFT JOIN procedures pr ON pr.id = dp."procedureId"
        AND (pr."accountId" = ev.account_id OR pr."accountId" IS NULL)
    GROUP BY ev.id
)
SELECT ev.id,
       pg_catalog.json_build_object(
           'id', ev.r -> 'id',
           'name', ev.r -> 'name',
           'crm', ev.r -> 'crm',
           'email', ev.r -> 'email',
           'phone', ev.r -> 'phone',
           'isBusy', ev.r -> 'isBusy',
           'accountId', ev.r -> 'accountId',
           'createdAt', pg_catalog.to_char((ev.r ->> 'createdAt')::timestamptz AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
           'updatedAt', pg_catalog.to_char((ev.r ->> 'updatedAt')::timestamptz AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
           'deletedAt', pg_catalog.to_char((ev.r ->> 'deletedAt')::timestamptz AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
           'doctorProcedures', coalesce(l.procs, '[]'::json)
       ) AS payload
FROM ev
LEFT JOIN links l ON l.event_id = ev.id
) AS q;
END
$body$
$notifier_rule$);
CREATE CONSTRAINT TRIGGER "notifier_doctors_capture"
    AFTER INSERT OR UPDATE OR DELETE ON "doctors"
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION notifier.capture('doctors', 'id');
SELECT notifier.check_rule('doctors');

-- List appointments.today: rows of rule appointments, by date, "startTime", id, 200 a page.
INSERT INTO notifier.lists (name, rule, page_size) VALUES ('appointments.today', 'appointments', 200);
SELECT notifier.create_function('appointments', pg_catalog.to_regclass('"appointments"'), $notifier_rule$
CREATE FUNCTION notifier."list_appointments.today"(p_account bigint, p_max integer)
RETURNS TABLE (id bigint, payload json)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, __NOTIFIER_SCHEMA__
AS $body$
#variable_conflict use_column
BEGIN
RETURN QUERY WITH ev AS (
    SELECT l.n AS id, p_account AS account_id, NULL::text AS event, l.r, NULL::jsonb AS o
    FROM (SELECT pg_catalog.to_jsonb(t) AS r, row_number() OVER (ORDER BY date, "startTime", id) AS n
          FROM __NOTIFIER_TABLE__ AS t
          WHERE t."accountId" = p_account
            AND t."deletedAt" IS NULL
            AND (date >= date_trunc('day', now() AT TIME ZONE 'UTC') AND date < date_trunc('day', now() AT TIME ZONE 'UTC') + interval '1 day')
          ORDER BY date, "startTime", id
          LIMIT p_max) AS l
)
SELECT q.id::bigint, q.payload::json FROM (
-- Enrichment of the clinic rule "appointments" (triggers/clinic.yaml): one row (id,
-- payload) per row of ev, the payload in the seed contract (000, 001). ev (id,
-- account_id, event, r, o) is what the rule's functions give it: the burst's events
-- (r the row as committed, o the row before for events that keep it) or a snapshot's
-- rows (r the row now, no o), so live events and snapshots share this one query. An event
-- that kept the row before its update (appointments.status.changed) also carries
-- previousStatus, the status it changed from.
--
-- The appointment's own columns come from r: for an event, as of its commit, whatever
-- happened to the row since. Its status is the one it had
-- then (looked up by that statusId); doctor, patient, contact and procedure are read now,
-- and only when they belong to the event's account (procedures may also be shared, with no
-- account): no path returns another clinic's rows.
--
-- Timestamps are UTC ISO-8601 with milliseconds (the pool's session TimeZone is UTC;
-- a timestamp column's JSON has no offset and is taken as UTC, a timestamptz column's
-- carries its offset); prices drop trailing fractional zeros.
--
-- Set-based: the first procedure link of every appointment of the burst is found in one
-- pass (DISTINCT ON), an index range with the index the README recommends on
-- ("appointmentId", id). The rows looked up by primary key (doctor, patient, contact,
-- statuses, procedure) are LATERAL ... LIMIT 1: the function's cached generic plan then
-- probes them per event instead of hashing each table per burst (0.78 -> 0.42 ms of
-- server time for a one-event burst on the reference data).
--
-- Functions are schema-qualified: a role that can create objects in a schema on the
-- session's search_path must not be able to shadow them with a better-matching overload.
WITH first_link AS (
    SELECT DISTINCT ON (ev.id) ev.id AS event_id, ap.id, ap."procedureId"
    FROM ev
    JOIN appointment_procedures ap ON ap."appointmentId" = (ev.r ->> 'id')::bigint
    ORDER BY ev.id, ap.id
)
SELECT ev.id,
       CASE WHEN ev.o IS NULL THEN a.payload ELSE (pg_catalog.left(a.payload::text, -1)
           OPERATOR(pg_catalog.||) ',"previousStatus":'
           OPERATOR(pg_catalog.||) coalesce(pg_catalog.json_build_object('id', ps.id, 'name', ps.name, 'color', ps.color)::text, 'null')
           OPERATOR(pg_catalog.||) '}')::json END AS payload
FROM ev
LEFT JOIN LATERAL (SELECT d.* FROM doctors d WHERE d.id = (ev.r ->> 'doctorId')::bigint AND d."accountId" = ev.account_id LIMIT 1) d ON true
LEFT JOIN LATERAL (SELECT p.* FROM patients p WHERE p.id = (ev.r ->> 'patientId')::bigint AND p."accountId" = ev.account_id LIMIT 1) p ON true
LEFT JOIN LATERAL (SELECT c.* FROM contacts c WHERE c.id = p."contactId" LIMIT 1) c ON true
LEFT JOIN LATERAL (SELECT s.* FROM statuses s WHERE s.id = (ev.r ->> 'statusId')::bigint LIMIT 1) s ON true
LEFT JOIN first_link fl ON fl.event_id = ev.id
LEFT JOIN LATERAL (SELECT pr.* FROM procedures pr WHERE pr.id = fl."procedureId"
    AND (pr."accountId" = ev.account_id OR pr."accountId" IS NULL) LIMIT 1) pr ON true
LEFT JOIN LATERAL (SELECT ps.* FROM statuses ps WHERE ps.id = (ev.o ->> 'statusId')::bigint LIMIT 1) ps ON true
CROSS JOIN LATERAL (SELECT pg_catalog.json_build_object(
           'id', ev.r -> 'id',
           'date', pg_catalog.to_char((ev.r ->> 'date')::timestamptz AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
           'startTime', ev.r -> 'startTime',
           'endTime', ev.r -> 'endTime',
           'notes', ev.r -> 'notes',
           'doctorId', ev.r -> 'doctorId',
           'patientId', ev.r -> 'patientId',
           'statusId', ev.r -> 'statusId',
           'accountId', ev.r -> 'accountId',
           'createdAt', pg_catalog.to_char((ev.r ->> 'createdAt')::timestamptz AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
           'updatedAt', pg_catalog.to_char((ev.r ->> 'updatedAt')::timestamptz AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
           'deletedAt', pg_catalog.to_char((ev.r ->> 'deletedAt')::timestamptz AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
           'doctor', CASE WHEN d.id IS NOT NULL THEN pg_catalog.json_build_object(
               'id', d.id,
               'name', d.name,
               'crm', d.crm,
               'email', d.email,
               'phone', d.phone,
               'isBusy', d."isBusy",
               'accountId', d."accountId") END,
           'patient', CASE WHEN p.id IS NOT NULL THEN pg_catalog.json_build_object(
               'id', p.id,
               'name', p.name,
               'contactId', p."contactId",
               'accountId', p."accountId",
               'contact', CASE WHEN c.id IS NOT NULL THEN pg_catalog.json_build_object(
                   'id', c.id,
                   'phone', c.phone,
                   'email', c.email) END) END,
           'status', CASE WHEN s.id IS NOT NULL THEN pg_catalog.json_build_object(
               'id', s.id,
               'name', s.name,
               'color', s.color) END,
           'appointmentProcedures', CASE WHEN fl.id IS NOT NULL THEN pg_catalog.json_build_object(
               'id', fl.id,
               'procedureId', fl."procedureId",
               'procedure', CASE WHEN pr.id IS NOT NULL THEN pg_catalog.json_build_object(
                   'id', pr.id,
                   'name', pr.name,
                   'price', pg_catalog.trim_scale(pr.price)::text) END) END
       ) AS payload) AS a
) AS q
ORDER BY 1;
END
$body$
$notifier_rule$);
SELECT notifier.check_list('appointments.today');

-- List appointments.checkin: rows of rule appointments, by "updatedAt", id, 200 a page.
INSERT INTO notifier.lists (name, rule, page_size) VALUES ('appointments.checkin', 'appointments', 200);
SELECT notifier.create_function('appointments', pg_catalog.to_regclass('"appointments"'), $notifier_rule$
CREATE FUNCTION notifier."list_appointments.checkin"(p_account bigint, p_max integer)
RETURNS TABLE (id bigint, payload json)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, __NOTIFIER_SCHEMA__
AS $body$
#variable_conflict use_column
BEGIN
RETURN QUERY WITH ev AS (
    SELECT l.n AS id, p_account AS account_id, NULL::text AS event, l.r, NULL::jsonb AS o
    FROM (SELECT pg_catalog.to_jsonb(t) AS r, row_number() OVER (ORDER BY "updatedAt", id) AS n
          FROM __NOTIFIER_TABLE__ AS t
          WHERE t."accountId" = p_account
            AND t."deletedAt" IS NULL
            AND ("statusId" IN (SELECT s.id FROM statuses s WHERE s.name = 'Check-in'))
          ORDER BY "updatedAt", id
          LIMIT p_max) AS l
)
SELECT q.id::bigint, q.payload::json FROM (
-- Enrichment of the clinic rule "appointments" (triggers/clinic.yaml): one row (id,
-- payload) per row of ev, the payload in the seed contract (000, 001). ev (id,
-- account_id, event, r, o) is what the rule's functions give it: the burst's events
-- (r the row as committed, o the row before for events that keep it) or a snapshot's
-- rows (r the row now, no o), so live events and snapshots share this one query. An event
-- that kept the row before its update (appointments.status.changed) also carries
-- previousStatus, the status it changed from.
--
-- The appointment's own columns come from r: for an event, as of its commit, whatever
-- happened to the row since. Its status is the one it had
-- then (looked up by that statusId); doctor, patient, contact and procedure are read now,
-- and only when they belong to the event's account (procedures may also be shared, with no
-- account): no path returns another clinic's rows.
--
-- Timestamps are UTC ISO-8601 with milliseconds (the pool's session TimeZone is UTC;
-- a timestamp column's JSON has no offset and is taken as UTC, a timestamptz column's
-- carries its offset); prices drop trailing fractional zeros.
--
-- Set-based: the first procedure link of every appointment of the burst is found in one
-- pass (DISTINCT ON), an index range with the index the README recommends on
-- ("appointmentId", id). The rows looked up by primary key (doctor, patient, contact,
-- statuses, procedure) are LATERAL ... LIMIT 1: the function's cached generic plan then
-- probes them per event instead of hashing each table per burst (0.78 -> 0.42 ms of
-- server time for a one-event burst on the reference data).
--
-- Functions are schema-qualified: a role that can create objects in a schema on the
-- session's search_path must not be able to shadow them with a better-matching overload.
WITH first_link AS (
    SELECT DISTINCT ON (ev.id) ev.id AS event_id, ap.id, ap."procedureId"
    FROM ev
    JOIN appointment_procedures ap ON ap."appointmentId" = (ev.r ->> 'id')::bigint
    ORDER BY ev.id, ap.id
)
SELECT ev.id,
       CASE WHEN ev.o IS NULL THEN a.payload ELSE (pg_catalog.left(a.payload::text, -1)
           OPERATOR(pg_catalog.||) ',"previousStatus":'
           OPERATOR(pg_catalog.||) coalesce(pg_catalog.json_build_object('id', ps.id, 'name', ps.name, 'color', ps.color)::text, 'null')
           OPERATOR(pg_catalog.||) '}')::json END AS payload
FROM ev
LEFT JOIN LATERAL (SELECT d.* FROM doctors d WHERE d.id = (ev.r ->> 'doctorId')::bigint AND d."accountId" = ev.account_id LIMIT 1) d ON true
LEFT JOIN LATERAL (SELECT p.* FROM patients p WHERE p.id = (ev.r ->> 'patientId')::bigint AND p."accountId" = ev.account_id LIMIT 1) p ON true
LEFT JOIN LATERAL (SELECT c.* FROM contacts c WHERE c.id = p."contactId" LIMIT 1) c ON true
LEFT JOIN LATERAL (SELECT s.* FROM statuses s WHERE s.id = (ev.r ->> 'statusId')::bigint LIMIT 1) s ON true
LEFT JOIN first_link fl ON fl.event_id = ev.id
LEFT JOIN LATERAL (SELECT pr.* FROM procedures pr WHERE pr.id = fl."procedureId"
    AND (pr."accountId" = ev.account_id OR pr."accountId" IS NULL) LIMIT 1) pr ON true
LEFT JOIN LATERAL (SELECT ps.* FROM statuses ps WHERE ps.id = (ev.o ->> 'statusId')::bigint LIMIT 1) ps ON true
CROSS JOIN LATERAL (SELECT pg_catalog.json_build_object(
           'id', ev.r -> 'id',
           'date', pg_catalog.to_char((ev.r ->> 'date')::timestamptz AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
           'startTime', ev.r -> 'startTime',
           'endTime', ev.r -> 'endTime',
           'notes', ev.r -> 'notes',
           'doctorId', ev.r -> 'doctorId',
           'patientId', ev.r -> 'patientId',
           'statusId', ev.r -> 'statusId',
           'accountId', ev.r -> 'accountId',
           'createdAt', pg_catalog.to_char((ev.r ->> 'createdAt')::timestamptz AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
           'updatedAt', pg_catalog.to_char((ev.r ->> 'updatedAt')::timestamptz AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
           'deletedAt', pg_catalog.to_char((ev.r ->> 'deletedAt')::timestamptz AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
           'doctor', CASE WHEN d.id IS NOT NULL THEN pg_catalog.json_build_object(
               'id', d.id,
               'name', d.name,
               'crm', d.crm,
               'email', d.email,
               'phone', d.phone,
               'isBusy', d."isBusy",
               'accountId', d."accountId") END,
           'patient', CASE WHEN p.id IS NOT NULL THEN pg_catalog.json_build_object(
               'id', p.id,
               'name', p.name,
               'contactId', p."contactId",
               'accountId', p."accountId",
               'contact', CASE WHEN c.id IS NOT NULL THEN pg_catalog.json_build_object(
                   'id', c.id,
                   'phone', c.phone,
                   'email', c.email) END) END,
           'status', CASE WHEN s.id IS NOT NULL THEN pg_catalog.json_build_object(
               'id', s.id,
               'name', s.name,
               'color', s.color) END,
           'appointmentProcedures', CASE WHEN fl.id IS NOT NULL THEN pg_catalog.json_build_object(
               'id', fl.id,
               'procedureId', fl."procedureId",
               'procedure', CASE WHEN pr.id IS NOT NULL THEN pg_catalog.json_build_object(
                   'id', pr.id,
                   'name', pr.name,
                   'price', pg_catalog.trim_scale(pr.price)::text) END) END
       ) AS payload) AS a
) AS q
ORDER BY 1;
END
$body$
$notifier_rule$);
SELECT notifier.check_list('appointments.checkin');

-- List doctors: rows of rule doctors, by name, id, 200 a page.
INSERT INTO notifier.lists (name, rule, page_size) VALUES ('doctors', 'doctors', 200);
SELECT notifier.create_function('doctors', pg_catalog.to_regclass('"doctors"'), $notifier_rule$
CREATE FUNCTION notifier."list_doctors"(p_account bigint, p_max integer)
RETURNS TABLE (id bigint, payload json)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, __NOTIFIER_SCHEMA__
AS $body$
#variable_conflict use_column
BEGIN
RETURN QUERY WITH ev AS (
    SELECT l.n AS id, p_account AS account_id, NULL::text AS event, l.r, NULL::jsonb AS o
    FROM (SELECT pg_catalog.to_jsonb(t) AS r, row_number() OVER (ORDER BY name, id) AS n
          FROM __NOTIFIER_TABLE__ AS t
          WHERE t."accountId" = p_account
            AND t."deletedAt" IS NULL
          ORDER BY name, id
          LIMIT p_max) AS l
)
SELECT q.id::bigint, q.payload::json FROM (
-- Enrichment of the clinic rule "doctors" (triggers/clinic.yaml): one row (id, payload)
-- per row of ev (see appointments.sql), the payload in the seed contract (002). The
-- doctor's own columns come from r (for an event, as of its commit); doctorProcedures are read now, ordered by the link's id, [] when none, with
-- only the procedures of the event's account (or shared ones, with no account).
-- Set-based: the links of every doctor of the burst are aggregated in one pass.
--
-- Functions are schema-qualified: a role that can create objects in a schema on the
-- session's search_path must not be able to shadow them with a better-matching overload.
WITH links AS (
    SELECT ev.id AS event_id,
           pg_catalog.json_agg(pg_catalog.json_build_object(
               'id', dp.id,
               'procedureId', dp."procedureId",
               'procedure', CASE WHEN pr.id IS NOT NULL THEN pg_catalog.json_build_object(
                   'id', pr.id,
                   'name', pr.name,
                   'price', pg_catalog.trim_scale(pr.price)::text) END)
           ORDER BY dp.id) AS procs
    FROM ev
    JOIN doctor_procedures dp ON dp."doctorId" = (ev.r ->> 'id')::bigint
    LEFT JOIN procedures pr ON pr.id = dp."procedureId"
        AND (pr."accountId" = ev.account_id OR pr."accountId" IS NULL)
    GROUP BY ev.id
)
SELECT ev.id,
       pg_catalog.json_build_object(
           'id', ev.r -> 'id',
           'name', ev.r -> 'name',
           'crm', ev.r -> 'crm',
           'email', ev.r -> 'email',
           'phone', ev.r -> 'phone',
           'isBusy', ev.r -> 'isBusy',
           'accountId', ev.r -> 'accountId',
           'createdAt', pg_catalog.to_char((ev.r ->> 'createdAt')::timestamptz AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
           'updatedAt', pg_catalog.to_char((ev.r ->> 'updatedAt')::timestamptz AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
           'deletedAt', pg_catalog.to_char((ev.r ->> 'deletedAt')::timestamptz AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
           'doctorProcedures', coalesce(l.procs, '[]'::json)
       ) AS payload
FROM ev
LEFT JOIN links l ON l.event_id = ev.id
) AS q
ORDER BY 1;
END
$body$
$notifier_rule$);
SELECT notifier.check_list('doctors');

-- The events of every rule whose table the committing transaction changed.
CREATE OR REPLACE FUNCTION notifier.derive()
RETURNS SETOF notifier.derived
LANGUAGE plpgsql
AS $notifier_rule$
DECLARE
    r text;
BEGIN
    FOR r IN SELECT DISTINCT p.rule FROM notifier.pending p WHERE p.xid = pg_current_xact_id() LOOP
        CASE r
        WHEN 'appointments' THEN RETURN QUERY SELECT * FROM notifier."derive_appointments"();
        WHEN 'doctors' THEN RETURN QUERY SELECT * FROM notifier."derive_doctors"();
        ELSE NULL;
        END CASE;
    END LOOP;
END
$notifier_rule$;
REVOKE ALL ON FUNCTION notifier.derive() FROM PUBLIC;
