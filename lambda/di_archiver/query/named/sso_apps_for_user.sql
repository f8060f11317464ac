-- name: sso_apps_for_user
-- description: Which SSO applications a user (username or id) signed in to, how often, when.
-- params: user, from_day, to_day
WITH target AS (SELECT CAST(? AS varchar) AS who)
SELECT
  COALESCE(e.application.display_label, e.application.name) AS application,
  COUNT(*) AS sign_ins,
  MIN(e."timestamp") AS first_sign_in,
  MAX(e."timestamp") AS last_sign_in
FROM events AS e
CROSS JOIN target AS t
WHERE e.dt BETWEEN ? AND ?
  AND e.svc = 'sso'
  AND e.success = true
  AND t.who IN (e.initiated_by.username, e.initiated_by.id)
GROUP BY COALESCE(e.application.display_label, e.application.name)
ORDER BY sign_ins DESC, application
