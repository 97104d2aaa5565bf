"""Transactions in: the ledger's pure state machine, the poster, the poller and the webhook
receiver.

Imports the foundation, connectors, state and runtime; never reference.
"""
