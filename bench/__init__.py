"""Harnesses that start their own servers: `make bench` (python -m bench) and `make chaos`
(python -m bench.chaos)."""
