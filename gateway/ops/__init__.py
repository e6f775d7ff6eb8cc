"""Operating the gateway: what `serve` refuses to start with (`preflight`), and reloading
partners and config while it runs (`reload`: SIGHUP, the pid file, key refresh)."""
