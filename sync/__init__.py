"""icsync: keeps iCompleat in step with an ERP.

Layers, lowest first (each imports only the ones below it; CI checks it with import-linter):
foundation <- connectors, state <- reference.rules <- runtime <- reference, transactions <-
daemon, console, demo <- cli. See README.md, Development.
"""
