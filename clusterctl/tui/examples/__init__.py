"""Runnable example apps with stable fake data (the snapshot tests and the benchmark reuse them)."""
