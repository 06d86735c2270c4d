"""Capacity models: USL fit of load-test steps, growth forecast, threshold crossings, the review report."""
