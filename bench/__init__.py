"""Benchmarks: each prints its times and the ratio against a baseline measured in the same run."""
