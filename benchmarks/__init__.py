"""Benchmarks for fakevlm (issue #5): `python -m benchmarks.run --help` or `python benchmarks/run.py --help`."""
