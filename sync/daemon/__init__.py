"""The daemon: service, HTTP endpoints and their bounds, jobs, schedules, metrics, notify."""
