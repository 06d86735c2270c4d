"""Built-in pricing catalogs (YAML package data)."""
