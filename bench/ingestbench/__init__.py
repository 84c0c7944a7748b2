"""The ingest bench, one module per phase; run it with `uv run python bench/ingest.py`."""
