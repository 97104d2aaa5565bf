"""The shared runtime of a run: settings, connectors, state and client for a company, leases
with fencing, and the one wrapper that runs a company job under its lease.

Imports the foundation, connectors and state; used by reference, transactions, the daemon and
the CLI.
"""
