"""JSON schemas of grafana-foundation-sdk (package data, see SOURCE.md)."""
