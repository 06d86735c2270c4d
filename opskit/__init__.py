"""opskit: load tests, CI performance gates, scaling thresholds, alert rules, capacity and cost
planning, and scaling playbooks for the asset service, all driven by one file, opskit.yaml."""

__version__ = "0.1.0"
