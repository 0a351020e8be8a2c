"""The background service: scheduled jobs around the sync, reconcile and risk cores, leader election,
and the /metrics and /healthz endpoint."""
