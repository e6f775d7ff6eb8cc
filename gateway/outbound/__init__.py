"""Sending to partners: delivery with retries, the partner credentials, the circuit breaker."""
