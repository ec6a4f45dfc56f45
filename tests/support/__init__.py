"""Helpers that tests import, one job per module (fixtures stay in tests/conftest.py)."""
