"""Loopback sandbox partners: what a careful partner checks, for development, tests and the demo.

`start_sandboxes` (cluster) serves every loopback partner of a config; `SandboxPartner`
(partner) is one of them, with its checks (`checks`, `credentials`) and the failures a
test injects (`faults`); `dev` is the `[sandbox] serve` switch of `gateway serve`.
"""

from gateway.sandbox.cluster import SandboxCluster, start_sandboxes, with_base_url
from gateway.sandbox.faults import Faults
from gateway.sandbox.partner import SANDBOX_KEY, Received, Rejection, SandboxPartner

__all__ = [
    "SANDBOX_KEY",
    "Faults",
    "Received",
    "Rejection",
    "SandboxCluster",
    "SandboxPartner",
    "start_sandboxes",
    "with_base_url",
]
