"""Model registry on MLflow: immutable versions with lineage and sha256 manifests, champion alias moves."""
