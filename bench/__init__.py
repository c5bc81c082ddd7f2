"""Benchmarks: run with ``python -m bench.core`` or ``python -m bench.service``."""
