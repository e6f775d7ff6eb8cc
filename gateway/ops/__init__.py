"""Operating the gateway: what `serve` refuses to start with."""
