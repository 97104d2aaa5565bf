"""Reference data out: the IO shell of one company's run and one kind's run.

Apply, refresh, custom fields, settle, read-back, fingerprints and holds. Imports the
foundation, connectors, state, the pure rules and the runtime; never transactions.
"""
