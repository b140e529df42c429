-- Enrichment for appointments.created and appointments.checkin: one row per appointment
-- id in $1, its payload as JSON text in the seed contract (000, 001). Timestamps are
-- UTC ISO-8601 with milliseconds (the pool's session TimeZone is UTC, so timestamptz
-- columns render in UTC too); prices drop trailing fractional zeros.
--
-- Set-based: the first procedure link of every appointment of the burst is found in
-- one pass (DISTINCT ON), never with a subquery per appointment, so a burst costs one
-- scan of appointment_procedures at worst, an index range with the index the README
-- recommends on ("appointmentId", id).
WITH first_link AS (
    SELECT DISTINCT ON (ap."appointmentId") ap."appointmentId", ap.id, ap."procedureId"
    FROM appointment_procedures ap
    -- A join, not "= ANY($1)": a filter compares every row with every id of the
    -- burst when the plan is generic; a join hashes them (or walks the index).
    JOIN unnest($1::bigint[]) AS burst(id) ON burst.id = ap."appointmentId"
    ORDER BY ap."appointmentId", ap.id
)
SELECT a.id,
       json_build_object(
           'id', a.id,
           'date', to_char(a.date, 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
           'startTime', a."startTime",
           'endTime', a."endTime",
           'notes', a.notes,
           'doctorId', a."doctorId",
           'patientId', a."patientId",
           'statusId', a."statusId",
           'accountId', a."accountId",
           'createdAt', to_char(a."createdAt", 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
           'updatedAt', to_char(a."updatedAt", 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
           'deletedAt', to_char(a."deletedAt", 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
           'doctor', CASE WHEN d.id IS NOT NULL THEN json_build_object(
               'id', d.id,
               'name', d.name,
               'crm', d.crm,
               'email', d.email,
               'phone', d.phone,
               'isBusy', d."isBusy",
               'accountId', d."accountId") END,
           'patient', CASE WHEN p.id IS NOT NULL THEN json_build_object(
               'id', p.id,
               'name', p.name,
               'contactId', p."contactId",
               'accountId', p."accountId",
               'contact', CASE WHEN c.id IS NOT NULL THEN json_build_object(
                   'id', c.id,
                   'phone', c.phone,
                   'email', c.email) END) END,
           'status', CASE WHEN s.id IS NOT NULL THEN json_build_object(
               'id', s.id,
               'name', s.name,
               'color', s.color) END,
           'appointmentProcedures', CASE WHEN fl.id IS NOT NULL THEN json_build_object(
               'id', fl.id,
               'procedureId', fl."procedureId",
               'procedure', CASE WHEN pr.id IS NOT NULL THEN json_build_object(
                   'id', pr.id,
                   'name', pr.name,
                   'price', trim_scale(pr.price)::text) END) END
       )::text
FROM appointments a
LEFT JOIN doctors d ON d.id = a."doctorId"
LEFT JOIN patients p ON p.id = a."patientId"
LEFT JOIN contacts c ON c.id = p."contactId"
LEFT JOIN statuses s ON s.id = a."statusId"
LEFT JOIN first_link fl ON fl."appointmentId" = a.id
LEFT JOIN procedures pr ON pr.id = fl."procedureId"
WHERE a.id = ANY($1::bigint[])
