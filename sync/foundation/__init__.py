"""The foundation layer: errors, configuration, secrets, logs, kinds and small shared rules.

Nothing here imports any other part of the project.
"""
