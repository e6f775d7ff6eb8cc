"""Disclosure Gateway: the one door through which personal data leaves the company."""
