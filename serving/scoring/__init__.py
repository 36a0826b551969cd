"""Batch scoring (score.py): the runtime's own functions over files and tables, sharded, chunked, resumable."""
