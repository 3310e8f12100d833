"""Benchmarks of BENCH.md: ``python -m bench [W1 ... W7] [--quick]``."""
