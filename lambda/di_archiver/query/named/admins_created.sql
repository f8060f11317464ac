-- name: admins_created
-- description: New administrators: admin accounts created and users granted admin rights.
-- params: from_day, to_day
SELECT
  "timestamp",
  event_type,
  COALESCE(initiated_by.email, initiated_by.username, initiated_by.id) AS granted_by,
  COALESCE(resource.email, resource.username, resource.id) AS new_admin,
  id,
  org
FROM events
WHERE dt BETWEEN ? AND ?
  AND svc = 'directory'
  AND event_type IN ('admin_create', 'user_admin_granted')
ORDER BY "timestamp", id
