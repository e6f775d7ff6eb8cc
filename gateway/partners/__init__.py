"""Partners: the partner files, their keys, their standing (agreements, suspensions) and their
diffs.

The small public surface is re-exported here: the records (`model`), the one partner
key-file reader (`keyfile`) and the loader (`loader`). Standing (`standing`) and diffs
(`diff`) are imported from their modules.
"""

from gateway.partners.keyfile import (
    PartnerKey,
    PartnerKeyError,
    last_expiry,
    parse_partner_keys,
    read_partner_key_file,
)
from gateway.partners.loader import load_partner, load_partner_files, load_partners
from gateway.partners.model import (
    NO_PARTNER_STATE,
    LiveTable,
    Operation,
    Partner,
    PartnerAuth,
    PartnerEncryption,
    PartnerState,
    SecretRef,
    Suspension,
    SuspensionEvent,
    current,
)

__all__ = [
    "NO_PARTNER_STATE",
    "LiveTable",
    "Operation",
    "Partner",
    "PartnerAuth",
    "PartnerEncryption",
    "PartnerKey",
    "PartnerKeyError",
    "PartnerState",
    "SecretRef",
    "Suspension",
    "SuspensionEvent",
    "current",
    "last_expiry",
    "load_partner",
    "load_partner_files",
    "load_partners",
    "parse_partner_keys",
    "read_partner_key_file",
]
