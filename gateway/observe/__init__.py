"""Observability: application log lines (no personal value, tied to the request) and Prometheus
metrics.
"""
