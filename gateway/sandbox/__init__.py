"""Loopback sandbox partners: what a careful partner checks, for development, tests and the demo."""
