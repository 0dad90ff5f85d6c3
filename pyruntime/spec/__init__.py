"""The OCI runtime-spec: the typed model of config.json, its loading and its validation."""
