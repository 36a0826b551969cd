"""The bottom layer beside runtime/: the run-directory API, atomic writes, typed configs (no torch)."""
