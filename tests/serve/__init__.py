"""Tests of paddle_binbert.serve (the HTTP server of packed folders) and benchmarks/bench_serve.py."""
