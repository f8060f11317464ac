-- name: events_per_service_per_day
-- description: Event counts per organisation, service and UTC day (volume and gaps at a glance).
-- params: from_day, to_day
SELECT
  org,
  svc AS service,
  dt AS day,
  COUNT(*) AS events
FROM events
WHERE dt BETWEEN ? AND ?
GROUP BY org, svc, dt
ORDER BY org, service, day
