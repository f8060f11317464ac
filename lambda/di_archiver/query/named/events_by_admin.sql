-- name: events_by_admin
-- description: Every event initiated by one administrator (email or id), all services.
-- params: admin, from_day, to_day
WITH target AS (SELECT CAST(? AS varchar) AS who)
SELECT
  e."timestamp",
  e.svc AS service,
  e.event_type,
  e.success,
  e.resource.type AS resource_type,
  COALESCE(e.resource.email, e.resource.username, e.resource.name, e.resource.id) AS resource,
  e.client_ip,
  e.id,
  e.org
FROM events AS e
CROSS JOIN target AS t
WHERE e.dt BETWEEN ? AND ?
  AND e.initiated_by.type = 'admin'
  AND t.who IN (e.initiated_by.email, e.initiated_by.id)
ORDER BY e."timestamp", e.id
