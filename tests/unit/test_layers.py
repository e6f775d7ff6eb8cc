"""The layer order of docs/ARCHITECTURE.md, kept true: no module imports from a layer above it.

An AST scan of every ``gateway.*`` import — lazy ones inside functions and ``TYPE_CHECKING``
ones included, since each is a dependency someone has to understand — checked against a
table that places today's modules in the layers of the target tree. An AST scan rather than
import-linter: about forty lines, no new dependency, and the table below is at the same time
the plan of the move into folders (import-linter would need every flat module listed in its
config anyway, and could not tell why an exception is there).

A module may import from its own layer and from any layer below. KNOWN_UPWARD lists the
upward imports tolerated for now, each with the cut that removes it — none today; the
list only shrinks: an entry whose import is gone fails the test until it is deleted.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Final

import gateway

ROOT: Final = Path(gateway.__file__).parent

# Bottom to top. Above the shared leaves and observability, the layers follow a
# disclosure: who calls, which partner, the decision, the seal, the durable log, the send;
# then what is built on that flow, then the composition root and the entry points.
LAYERS: Final = (
    "leaves",  # errors, problem codes, vocabularies, clock, files, canonical JSON
    "observe",  # application logging, metrics
    "config",
    "callers",  # who is calling (bearer tokens, JWKS)
    "partners",  # partner files, standing, lifecycle
    "policy",  # the pure model: request, facts, minimize, decide
    "crypto",  # key files, keyring, seal, at-rest and log subject keys
    "store",  # the storage port, its adapters, the protected store
    "log",  # entries, Merkle tree, checkpoints, writer, service, audit, search
    "outbound",  # delivery, partner credentials, circuit breaker
    "disclosure",  # the pipeline
    "rights",  # subject rights, lawful requests
    "ops",  # what serve refuses to start with, reloading partners and config
    "web",  # the composition root, HTTP handlers, the review page
    "entry",  # the gateway command, serve, demo, sandbox partners
)

# The folder is the layer: every module of a concern's folder takes its layer. Modules
# directly in gateway/ are the shared leaves and must be listed in LEAVES (the test says
# so), so a new concern gets a folder rather than a flat module.
PACKAGE_LAYER: Final = {
    "gateway.observe": "observe",
    "gateway.config": "config",
    "gateway.callers": "callers",
    "gateway.partners": "partners",
    "gateway.policy": "policy",
    "gateway.crypto": "crypto",
    "gateway.store": "store",
    "gateway.log": "log",
    "gateway.outbound": "outbound",
    "gateway.disclosure": "disclosure",
    "gateway.rights": "rights",
    "gateway.ops": "ops",
    "gateway.web": "web",
    "gateway.cli": "entry",
    "gateway.sandbox": "entry",
    "gateway.witness": "entry",
}
MODULE_LAYER: Final = {
    "gateway": "leaves",  # the package itself: __version__
    "gateway.errors": "leaves",
    "gateway.problem_catalog": "leaves",
    "gateway.vocabulary": "leaves",
    "gateway.clock": "leaves",
    "gateway.files": "leaves",
    "gateway.subject_id": "leaves",
    "gateway.net": "leaves",  # is_loopback_host: the URL rule config and partners share
    "gateway.canonical": "leaves",  # canonical JSON: the log's, idempotency's, subject keys'
    "gateway.__main__": "entry",
    # The problem table is the SDK's (it needs nothing else); the server reads it, so the
    # two cannot disagree. The lowest leaf: it imports nothing at all.
    "gateway_client.problems": "leaves",
}

# Upward imports allowed for now (importer, imported), each with the cut that will remove
# it: none. The last five went by the three cuts of docs/ARCHITECTURE.md (a Protocol the
# lower layer defines, a helper moved into a leaf, a piece moved to the layer it belongs
# to). Adding one needs its reason and its cut beside it; the list only shrinks.
KNOWN_UPWARD: Final[frozenset[tuple[str, str]]] = frozenset()

# The SDK stands apart: it imports nothing from gateway/ (it carries its own wire types and
# the problem table), so a service installs it without the server's dependencies. The
# server may import of the SDK only its problem table, the leaf below every layer.
CLIENT_IMPORTS: Final[frozenset[str]] = frozenset()
SERVER_IMPORTS_OF_CLIENT: Final = frozenset({"gateway_client.problems"})


CLIENT_ROOT: Final = ROOT.parent / "gateway_client"
PACKAGES: Final = ("gateway", "gateway_client")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES: Final = {module_name(p): p for p in ROOT.rglob("*.py")}
CLIENT_MODULES: Final = {module_name(p): p for p in CLIENT_ROOT.rglob("*.py")}


def imports_of(module: str) -> set[tuple[str, int]]:
    """Every gateway or gateway_client module `module` imports (with the line), wherever the
    import stands."""
    path = MODULES.get(module) or CLIENT_MODULES[module]
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found: set[tuple[str, int]] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {(alias.name, node.lineno) for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            source = node.module or ""
            if node.level:  # relative: `from . import x`, `from ..log import y`
                source = ".".join([*package[: len(package) - node.level + 1], source]).strip(".")
            for alias in node.names:  # `from gateway.log import search` imports a module
                submodule = f"{source}.{alias.name}"
                known = submodule in MODULES or submodule in CLIENT_MODULES
                found.add((submodule if known else source, node.lineno))
    return {(name, line) for name, line in found if name.split(".")[0] in PACKAGES}


def layer_of(module: str) -> str | None:
    if module in MODULE_LAYER:
        return MODULE_LAYER[module]
    packages = [p for p in PACKAGE_LAYER if module == p or module.startswith(p + ".")]
    return PACKAGE_LAYER[max(packages, key=len)] if packages else None


def rank(module: str) -> int:
    layer = layer_of(module)
    assert layer is not None, (
        f"{module} has no layer: put it in a concern's folder, or list a leaf in MODULE_LAYER"
    )
    return LAYERS.index(layer)


def upward_imports() -> dict[tuple[str, str], int]:
    found = {}
    for module in MODULES:
        for imported, line in imports_of(module):
            if rank(imported) > rank(module):
                found[(module, imported)] = line
    return found


def test_every_module_has_a_layer() -> None:
    unplaced = sorted(m for m in MODULES if layer_of(m) is None)
    assert not unplaced, (
        "put these modules in a concern's folder (PACKAGE_LAYER) "
        f"or list them as leaves (MODULE_LAYER): {unplaced}"
    )
    assert set(MODULE_LAYER.values()) | set(PACKAGE_LAYER.values()) <= set(LAYERS)


def test_no_module_imports_from_a_layer_above_it() -> None:
    new = {pair: line for pair, line in upward_imports().items() if pair not in KNOWN_UPWARD}
    assert not new, "import only from your own layer or below (docs/ARCHITECTURE.md):\n" + (
        "\n".join(
            f"  {MODULES[a].relative_to(ROOT.parent)}:{line}: {a} ({layer_of(a)}) imports "
            f"{b} ({layer_of(b)})"
            for (a, b), line in sorted(new.items())
        )
    )


def test_the_known_upward_imports_only_shrink() -> None:
    gone = sorted(KNOWN_UPWARD - set(upward_imports()))
    assert not gone, f"no longer upward (good): delete from KNOWN_UPWARD: {gone}"


def test_the_client_imports_nothing_from_the_server() -> None:
    imported = {name for module in CLIENT_MODULES for name, _ in imports_of(module)}
    from_server = {name for name in imported if name.split(".")[0] == "gateway"}
    assert from_server == set(CLIENT_IMPORTS) == set(), (
        f"gateway_client/ (the SDK) imports {sorted(from_server)} from gateway/: "
        "give the SDK its own type, or move the piece into gateway_client.problems"
    )
    assert "gateway_client.client" in CLIENT_MODULES  # the scan sees the SDK at all
    assert imports_of("gateway_client.problems") == set(), "the problem table is a leaf"


def test_the_server_imports_of_the_sdk_only_its_problem_table() -> None:
    found = {
        (module, imported, line)
        for module in MODULES
        for imported, line in imports_of(module)
        if imported.split(".")[0] == "gateway_client"
    }
    assert {imported for _, imported, _ in found} <= SERVER_IMPORTS_OF_CLIENT, "\n".join(
        f"  {MODULES[m].relative_to(ROOT.parent)}:{line}: {m} imports {i} (the SDK's client)"
        for m, i, line in sorted(found)
        if i not in SERVER_IMPORTS_OF_CLIENT
    )
    assert rank("gateway_client.problems") == 0


def test_the_scan_sees_lazy_relative_and_submodule_imports() -> None:
    # The scan is only worth what it finds: lazy imports inside functions count, and
    # `from gateway.log import search` is an import of the module gateway.log.search.
    cli = {name for name, _ in imports_of("gateway.cli.server")}
    assert "gateway.web.app" in cli  # imported inside the `serve` command only
    review = {name for name, _ in imports_of("gateway.web.review.log_backend")}
    assert "gateway.log.search" in review
    assert layer_of("gateway.store.sqlite") == "store"
    assert layer_of("gateway.crypto.subject_keys") == "crypto"


def test_the_architecture_page_shows_this_order() -> None:
    page = (ROOT.parent / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    rows = dict(
        (int(cells[1]), cells[2])
        for cells in (line.split("|") for line in page.splitlines())
        if len(cells) > 2 and cells[1].strip().isdigit()
    )
    assert sorted(rows) == list(range(len(LAYERS)))
    assert all(LAYERS[rank] in folder for rank, folder in rows.items()), rows
