"""Everything that talks to the outside world: ERP sources and sinks, and iCompleat.

Sources (SQL, files, memory) return the ERP's own columns; sinks post transactions exactly once;
``connectors.icompleat`` holds the routes table, the client and the sandbox; ``records.py`` holds
what every connector shares. Imports the foundation (``sync.foundation``) only.
"""
