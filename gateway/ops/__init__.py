"""Operating the gateway: what `serve` refuses to start with (`preflight`), reloading
partners and config while it runs (`reload`: SIGHUP, the pid file, key refresh), and what
the store keeps and for how long (`retention`)."""
