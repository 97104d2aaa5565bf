"""Real ERP exports and schemas, end to end: presets, mapping, encodings and the first day."""
