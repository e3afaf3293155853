"""Benchmarks: each `bench_*.py` measures the toolkit against a baseline in the same run."""
