"""Scaling playbooks: schema, planner (pure), executor, journal, lock, providers."""
