"""The env secrets the shipped partner files name; their sandboxes check the same values."""

SANDBOX_SECRETS = {
    "BCEL_CLIENT_SECRET": "sandbox-bcel-secret",
    "BUREAU_CLIENT_SECRET": "sandbox-bureau-secret",
    "LXI_API_KEY": "sandbox-lxi-key",
    "ADREACH_API_KEY": "sandbox-adreach-key",
    "INSIGHT_API_KEY": "sandbox-insight-key",
}
