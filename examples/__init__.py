"""Runnable examples of statefun-wsgi (run them from the repository root)."""
