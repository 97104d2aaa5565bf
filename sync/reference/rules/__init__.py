"""The pure rules of reference sync: values, keys, normalisation, diff, plan, guard.

Plain data in, plain data out: no asyncio, no state DB, no connectors, no clock. Imports the
foundation only.
"""
