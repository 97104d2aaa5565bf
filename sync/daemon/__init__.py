"""The daemon: service, HTTP endpoints (over a narrow view of the daemon), jobs, schedules,
metrics and systemd notify.

Imports every layer below it; never the console, the demo or the CLI.
"""
