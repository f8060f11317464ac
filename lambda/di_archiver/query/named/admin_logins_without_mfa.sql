-- name: admin_logins_without_mfa
-- description: Successful admin console logins that did not use MFA.
-- params: from_day, to_day
SELECT
  "timestamp",
  initiated_by.email AS admin_email,
  client_ip,
  geoip.country_code AS country,
  id,
  org
FROM events
WHERE dt BETWEEN ? AND ?
  AND svc = 'directory'
  AND event_type = 'admin_login_attempt'
  AND success = true
  AND COALESCE(mfa, false) = false
ORDER BY "timestamp", id
