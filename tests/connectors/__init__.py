"""Contract and unit tests of the ERP connectors (sources and transaction sinks)."""
