"""Storage integration tests use the `backend` and `store` fixtures of tests/conftest.py.

Every such test runs twice: on SQLite in its own tmp_path, and on PostgreSQL in a fresh,
uniquely named schema dropped afterwards. When PostgreSQL cannot be reached the
PostgreSQL half is skipped — except under ``CI=true``, where it fails.
"""
