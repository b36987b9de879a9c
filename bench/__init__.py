"""Benchmarks: `python -m bench` runs every workload side by side with its baseline, prints a
table and writes `bench/results.json`. `python -m bench --help` lists the options."""
