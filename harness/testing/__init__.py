"""Test doubles that speak real protocols (servers on 127.0.0.1), shared by tests and benchmarks."""
