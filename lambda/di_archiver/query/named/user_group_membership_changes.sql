-- name: user_group_membership_changes
-- description: Who added or removed a user (username, email or id) to or from user groups.
-- params: user, from_day, to_day
WITH
  target AS (SELECT CAST(? AS varchar) AS who),
  links AS (
    SELECT
      e."timestamp",
      e.id,
      e.org,
      COALESCE(e.initiated_by.email, e.initiated_by.username, e.initiated_by.id) AS changed_by,
      json_extract_scalar(e.association, '$.op') AS op,
      json_extract_scalar(e.association, '$.connection.from.type') AS from_type,
      json_extract_scalar(e.association, '$.connection.from.name') AS from_name,
      json_extract_scalar(e.association, '$.connection.from.object_id') AS from_id,
      json_extract_scalar(e.association, '$.connection.to.type') AS to_type,
      json_extract_scalar(e.association, '$.connection.to.name') AS to_name,
      json_extract_scalar(e.association, '$.connection.to.object_id') AS to_id
    FROM events AS e
    WHERE e.dt BETWEEN ? AND ?
      AND e.svc = 'directory'
      AND e.event_type = 'association_change'
  )
SELECT
  l."timestamp",
  l.changed_by,
  l.op,
  CASE WHEN l.from_type = 'user_group' THEN l.from_name ELSE l.to_name END AS group_name,
  CASE WHEN l.from_type = 'user_group' THEN l.from_id ELSE l.to_id END AS group_id,
  l.id,
  l.org
FROM links AS l
CROSS JOIN target AS t
WHERE (l.from_type = 'user_group' AND l.to_type = 'user' AND t.who IN (l.to_name, l.to_id))
   OR (l.to_type = 'user_group' AND l.from_type = 'user' AND t.who IN (l.from_name, l.from_id))
ORDER BY l."timestamp", l.id
