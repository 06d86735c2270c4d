"""Prometheus rules and Grafana dashboards rendered from opskit.yaml."""
