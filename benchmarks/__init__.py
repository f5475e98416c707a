"""Startup benchmark harness: see ``run.py`` (command line) and ``docs/benchmarks.md``."""
