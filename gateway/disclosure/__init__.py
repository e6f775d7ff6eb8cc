"""The flow of one disclosure, top to bottom (disclose()), and once-per-key idempotency."""
