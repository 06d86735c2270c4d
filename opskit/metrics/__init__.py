"""Metric sources behind one interface: prometheus, scrape, host (psutil), results, file."""
