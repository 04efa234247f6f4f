"""Fault tests: real processes (listener, worker, web) on real PostgreSQL, each fault provoked for real."""
