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
