-- name: failed_admin_logins
-- description: Every failed admin console login between two UTC days (e.g. last quarter).
-- params: from_day, to_day
SELECT
  "timestamp",
  initiated_by.email AS admin_email,
  client_ip,
  geoip.country_code AS country,
  mfa,
  id,
  org
FROM events
WHERE dt BETWEEN ? AND ?
  AND svc = 'directory'
  AND event_type = 'admin_login_attempt'
  AND success = false
ORDER BY "timestamp", id
