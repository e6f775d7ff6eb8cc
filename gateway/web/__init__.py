"""The HTTP face of the gateway: composition root, handlers, problem documents."""
