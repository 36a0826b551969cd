"""Data checks: schema, missing values, duplicates, leakage, balance, statistics, PII (python -m datamodules.validate)."""
