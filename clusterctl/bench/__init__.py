"""Benchmarks: ``clusterctl bench NAME [...] --json`` — one module per benchmark.

Each benchmark module exposes ``main(argv) -> int`` and prints exactly one JSON object on stdout
(progress goes to stderr). Figures and the commands that reproduce them live in
``docs/benchmarks.md``.
"""
