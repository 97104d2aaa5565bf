"""What a person sees: plan and run tables, live progress, reports.

Reads the engine's result types; the engine takes callbacks and never imports this package.
"""
