"""Tests of the foundation layer."""
