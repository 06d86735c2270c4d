"""Scaling evaluation: thresholds + metric series -> decisions and replica recommendations (pure)."""
