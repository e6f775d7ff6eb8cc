"""config.toml and its GATEWAY_<SECTION>_<KEY> overrides, read once at start into a frozen
Config.
"""
