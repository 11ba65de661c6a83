"""Benchmarks (run as scripts); a package so that tests can import the torch reference."""
