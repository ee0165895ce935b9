"""The config file (descope-reconcile.yaml) → named targets: credential sources, desired files, settings."""
