"""Benchmarks for the offline sandbox: indexing speed and memory, and search latency.

Run ``python -m bench`` (``--help`` for options). Results print as a table and are written as JSON
under ``bench/results/`` (git-ignored). Every measurement is paired with a baseline measured in the
same run, so ratios stay meaningful on a different or busier machine.
"""
