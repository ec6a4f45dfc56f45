"""Benchmark scripts that start what they measure and print figures (run with `python -m bench.<name>`)."""
