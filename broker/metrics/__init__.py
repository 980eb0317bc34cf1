"""Metric sources for the broker: a snapshot file or InfluxDB 1.x, behind a refreshed cache."""
