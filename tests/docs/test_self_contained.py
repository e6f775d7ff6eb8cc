"""The repository stands on its own: no tracked file refers to the folder beside the clone
that the project was started from (a user's clone has nothing beside it), and the data the
tests and docs need is inside the repository."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# Built from parts so that this file does not itself contain what it looks for.
SIBLING = re.compile(re.escape("..") + r"[/\\]" + "sha" + "red")


def tracked_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True
    ).stdout.decode()
    return [REPO / name for name in listed.split("\0") if name]


def test_no_tracked_file_refers_to_the_folder_beside_the_clone() -> None:
    offenders = []
    for path in tracked_files():
        if not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        for number, line in enumerate(text.splitlines(), start=1):
            if SIBLING.search(line):
                offenders.append(f"{path.relative_to(REPO)}:{number}: {line.strip()[:120]}")
    assert not offenders, "copy what is needed into the repository:\n" + "\n".join(offenders)


def test_the_pattern_finds_what_it_looks_for() -> None:
    assert SIBLING.search("see " + ".." + "/" + "shared" + "/policy")
    assert not SIBLING.search("a shared store")


def test_the_reference_material_is_in_the_repository() -> None:
    for name in (
        "docs/CONTRACT.md",
        "docs/policy/privacy-policy.txt",
        "docs/policy/POLICY-MAP.md",
        "tests/vectors/merkle/README.md",
        "tests/vectors/merkle/LICENSE",
        "tests/vectors/merkle/roots.json",
    ):
        assert (REPO / name).is_file(), name
    assert "transparency-dev/merkle" in (REPO / "tests/vectors/merkle/README.md").read_text()
    assert "Apache License" in (REPO / "tests/vectors/merkle/LICENSE").read_text()
