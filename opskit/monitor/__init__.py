"""The local Prometheus: a generated config and the process `opskit monitor up` starts and `down` stops."""
