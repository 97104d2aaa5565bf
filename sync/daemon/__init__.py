"""The daemon: service, HTTP endpoints, jobs, schedules, metrics, systemd notify, alerts and the
operator console it serves."""
