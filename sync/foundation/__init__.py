"""The foundation: errors, configuration, secrets, logs, clock, the kinds registry, crash points.

Imports nothing else of the project; every other layer may import it.
"""
