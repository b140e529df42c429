-- Enrichment for doctors.created: one row per doctor id in $1, its payload as JSON text
-- in the seed contract (002), doctorProcedures ordered by the link's id, [] when none.
-- Set-based: the links of every doctor of the burst are aggregated in one pass.
WITH links AS (
    SELECT dp."doctorId",
           json_agg(json_build_object(
               'id', dp.id,
               'procedureId', dp."procedureId",
               'procedure', CASE WHEN pr.id IS NOT NULL THEN json_build_object(
                   'id', pr.id,
                   'name', pr.name,
                   'price', trim_scale(pr.price)::text) END)
           ORDER BY dp.id) AS procs
    FROM doctor_procedures dp
    JOIN unnest($1::bigint[]) AS burst(id) ON burst.id = dp."doctorId"
    LEFT JOIN procedures pr ON pr.id = dp."procedureId"
    GROUP BY dp."doctorId"
)
SELECT d.id,
       json_build_object(
           'id', d.id,
           'name', d.name,
           'crm', d.crm,
           'email', d.email,
           'phone', d.phone,
           'isBusy', d."isBusy",
           'accountId', d."accountId",
           'createdAt', to_char(d."createdAt", 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
           'updatedAt', to_char(d."updatedAt", 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
           'deletedAt', to_char(d."deletedAt", 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
           'doctorProcedures', coalesce(l.procs, '[]'::json)
       )::text
FROM doctors d
LEFT JOIN links l ON l."doctorId" = d.id
WHERE d.id = ANY($1::bigint[])
