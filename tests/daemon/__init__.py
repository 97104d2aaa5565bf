"""Tests of the daemon layer."""
