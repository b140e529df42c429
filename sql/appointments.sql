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
