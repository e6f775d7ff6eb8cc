"""Disclosure Gateway: the one door through which personal data leaves the company."""

# The one place the version is written: pyproject.toml reads it (dynamic version), and
# `gateway --version`, /metrics' gateway_build_info and CHANGELOG.md quote it.
__version__ = "0.2.0"
