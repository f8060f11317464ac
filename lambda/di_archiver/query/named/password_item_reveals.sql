-- name: password_item_reveals
-- description: Password manager items (and item history) revealed in clear text, by whom.
-- params: from_day, to_day
SELECT
  "timestamp",
  event_type,
  COALESCE(initiated_by.email, initiated_by.username, initiated_by.id) AS revealed_by,
  client_ip,
  id,
  org
FROM events
WHERE dt BETWEEN ? AND ?
  AND svc = 'password_manager'
  AND event_type IN ('passwordmanager_item_reveal', 'passwordmanager_item_history_reveal')
ORDER BY "timestamp", id
