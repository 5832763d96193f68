"""Benchmarks: `make bench` (python -m bench [NAME ...]).  Each module reports ratios against a
baseline measured in the same run."""
