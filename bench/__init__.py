"""Benchmarks: `python -m bench` (serving, four variants) and `bench/corpus_bench.py` (corpus stage)."""
