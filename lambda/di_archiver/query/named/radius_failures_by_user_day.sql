-- name: radius_failures_by_user_day
-- description: Failed RADIUS authentications per user and UTC day.
-- params: from_day, to_day
SELECT
  dt AS day,
  COALESCE(username, initiated_by.username) AS username,
  COUNT(*) AS failures
FROM events
WHERE dt BETWEEN ? AND ?
  AND svc = 'radius'
  AND success = false
GROUP BY dt, COALESCE(username, initiated_by.username)
ORDER BY day, username
