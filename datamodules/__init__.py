"""LightningDataModules and everything about inputs (preprocessing, splits, data checks)."""
