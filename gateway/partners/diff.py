"""`gateway partners diff OLD NEW`: what a change to partners/ does to what each partner
receives, for review before it goes live (issue 9).

OLD and NEW are each a directory of partner files or a git revision of the
configured partners/ directory (read with `git show REV:partners/<id>.toml`).
Both sides go through the validating loader (key files are not opened: an old
revision's need not exist here), so an invalid side stops the diff with its
`file:line` messages.

Every change is classed by what it does to the data a partner receives:

- **widens**: a new partner or operation; a field added (other than `drop`); a
  transform weakened along drop < pseudonym < age_band = year < mask = truncate_ip
  < keep; a purpose or legal basis added; a longer retention; a new category (the
  consents given for a category then cover the partner) or jurisdiction (the data
  goes to another country);
- **narrows**: the reverse of each of those;
- **changes**: anything else (base_url, auth, encryption, agreement, method, path, …),
  shown for the reviewer but not judged.

The exit code is 1 when anything widens, so CI can require a privacy review.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path
from typing import Final, Literal

from gateway.errors import ConfigError
from gateway.partners.loader import load_partner_files, load_partners
from gateway.partners.model import Operation, Partner

__all__ = [
    "TRANSFORM_RANK",
    "Change",
    "PartnersDiff",
    "diff_partners",
    "read_partners",
    "render_markdown",
    "render_text",
]

Effect = Literal["widens", "narrows", "changes"]

# How much of a value each transform lets through; a field not listed sends nothing (drop).
TRANSFORM_RANK: Final[Mapping[str, int]] = {
    "drop": 0,
    "pseudonym": 1,
    "age_band": 2,
    "year": 2,
    "mask": 3,
    "truncate_ip": 3,
    "keep": 4,
}
_UNRANKED: Final = max(TRANSFORM_RANK.values())  # an unknown transform counts as keep
ABSENT: Final = "—"
GIT_TIMEOUT_S: Final = 30.0

# Partner attributes compared one by one, with how a change is classed.
_PARTNER_ATTRIBUTES: Final[tuple[tuple[str, Effect | None], ...]] = (
    ("category", "widens"),
    ("jurisdiction", "widens"),
    ("retention_days", None),  # longer widens, shorter narrows
    ("name", "changes"),
    ("agreement", "changes"),
    ("agreement_expires_on", "changes"),
    ("base_url", "changes"),
    ("privacy_contact", "changes"),
    ("ca_bundle", "changes"),
    ("timeout_s", "changes"),
    ("max_attempts", "changes"),
    ("max_in_flight", "changes"),
    ("rate", "changes"),
    ("acknowledgement", "changes"),
    ("acknowledgement_key", "changes"),
    ("forward_trace_context", "changes"),
)


@dataclass(frozen=True)
class Change:
    """One difference: `operation` None for the partner itself."""

    partner: str
    operation: str | None
    kind: Literal["added", "removed", "changed"]
    what: str  # "partner", "operation", "field email", "purpose marketing", "auth.type", …
    before: str
    after: str
    effect: Effect
    why: str = ""


@dataclass(frozen=True)
class PartnersDiff:
    old: str
    new: str
    changes: tuple[Change, ...]

    def count(self, effect: Effect) -> int:
        return sum(1 for c in self.changes if c.effect == effect)

    @property
    def widens(self) -> bool:
        return self.count("widens") > 0

    @property
    def exit_code(self) -> int:
        return 1 if self.widens else 0


# -- comparing ----------------------------------------------------------------------


def diff_partners(
    old: Mapping[str, Partner], new: Mapping[str, Partner], *, base_dir: Path | None = None
) -> list[Change]:
    """Every change from `old` to `new`, by partner, then partner-level before operations.

    Paths are shown relative to `base_dir` when under it.
    """
    changes: list[Change] = []
    for pid in sorted(set(old) | set(new)):
        before, after = old.get(pid), new.get(pid)
        if before is None and after is not None:
            changes.append(
                Change(
                    pid,
                    None,
                    "added",
                    "partner",
                    ABSENT,
                    f"{after.category}, {after.jurisdiction}, {after.base_url}",
                    "widens",
                    "a new recipient",
                )
            )
            for name in sorted(after.operations):
                changes += _operation_added(pid, after.operations[name])
        elif after is None and before is not None:
            changes.append(
                Change(pid, None, "removed", "partner", before.category, ABSENT, "narrows")
            )
        elif before is not None and after is not None:
            changes += _partner_changes(before, after, base_dir)
    return changes


def _show(value: object, base_dir: Path | None) -> str:
    if value is None:
        return ABSENT
    if isinstance(value, Path):
        if base_dir is not None:
            try:
                return value.relative_to(base_dir).as_posix()
            except ValueError:
                pass
        return value.as_posix()
    if isinstance(value, frozenset | set):
        return ", ".join(sorted(str(v) for v in value)) or ABSENT
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    return str(value)


def _partner_changes(old: Partner, new: Partner, base_dir: Path | None) -> Iterator[Change]:
    pid = new.id
    for name, effect in _PARTNER_ATTRIBUTES:
        before, after = getattr(old, name), getattr(new, name)
        if before == after:
            continue
        why = ""
        if effect is None:  # retention_days
            effect = "widens" if after > before else "narrows"
            why = "the partner keeps the data longer" if after > before else ""
        elif name == "category":
            why = "consents given for the new category now cover this partner"
        elif name == "jurisdiction":
            why = "the data goes to another country"
        yield Change(
            pid,
            None,
            "changed",
            name,
            _show(before, base_dir),
            _show(after, base_dir),
            effect,
            why,
        )
    for section in ("auth", "encryption"):
        old_section, new_section = getattr(old, section), getattr(new, section)
        for item in dataclasses.fields(old_section):
            before, after = getattr(old_section, item.name), getattr(new_section, item.name)
            if before != after:
                yield Change(
                    pid,
                    None,
                    "changed",
                    f"{section}.{item.name}",
                    _show(_secret_ref(before), base_dir),
                    _show(_secret_ref(after), base_dir),
                    "changes",
                )
    for name in sorted(set(old.operations) | set(new.operations)):
        before_op, after_op = old.operations.get(name), new.operations.get(name)
        if before_op is None and after_op is not None:
            yield from _operation_added(pid, after_op)
        elif after_op is None and before_op is not None:
            yield Change(
                pid, name, "removed", "operation", _op_summary(before_op), ABSENT, "narrows"
            )
        elif before_op is not None and after_op is not None:
            yield from _operation_changes(pid, before_op, after_op)


def _secret_ref(value: object) -> object:
    """A SecretRef shown by where it points (env name or file), never a value."""
    env, file = getattr(value, "env", None), getattr(value, "file", None)
    if env is not None:
        return f"env {env}"
    if file is not None:
        return file
    return value


def _op_summary(op: Operation) -> str:
    fields = ", ".join(f"{k}={v}" for k, v in sorted(op.fields.items()))
    return (
        f"{op.method} {op.path}; purposes {_show(op.purposes, None)}; "
        f"bases {_show(op.legal_bases, None)}; fields {fields}"
    )


def _operation_added(pid: str, op: Operation) -> Iterator[Change]:
    yield Change(pid, op.name, "added", "operation", ABSENT, _op_summary(op), "widens")


def _rank(transform: str | None) -> int:
    if transform is None:
        return 0
    return TRANSFORM_RANK.get(transform, _UNRANKED)


def _operation_changes(pid: str, old: Operation, new: Operation) -> Iterator[Change]:
    name = new.name
    for attribute in ("method", "path"):
        before, after = getattr(old, attribute), getattr(new, attribute)
        if before != after:
            yield Change(pid, name, "changed", attribute, before, after, "changes")
    for label, before_set, after_set in (
        ("purpose", old.purposes, new.purposes),
        ("legal basis", old.legal_bases, new.legal_bases),
    ):
        for value in sorted(after_set - before_set):
            yield Change(pid, name, "added", f"{label} {value}", ABSENT, value, "widens")
        for value in sorted(before_set - after_set):
            yield Change(pid, name, "removed", f"{label} {value}", value, ABSENT, "narrows")
    for field_name in sorted(set(old.fields) | set(new.fields)):
        before_t, after_t = old.fields.get(field_name), new.fields.get(field_name)
        if before_t == after_t:
            continue
        up, down = _rank(after_t) > _rank(before_t), _rank(after_t) < _rank(before_t)
        effect: Effect = "widens" if up else "narrows" if down else "changes"
        kind: Literal["added", "removed", "changed"] = (
            "added" if before_t is None else "removed" if after_t is None else "changed"
        )
        yield Change(
            pid,
            name,
            kind,
            f"field {field_name}",
            before_t or ABSENT,
            after_t or ABSENT,
            effect,
        )


# -- reading OLD and NEW ----------------------------------------------------------------


def read_partners(spec: str, *, partners_dir: Path, base_dir: Path) -> dict[str, Partner]:
    """The partner set `spec` names: a directory of *.toml, or a git revision of
    `partners_dir`. Relative paths in the files resolve against `base_dir` on both sides,
    so the same text compares equal. ConfigError(s) when it cannot be read or is invalid."""
    if Path(spec).is_dir():
        return load_partners(Path(spec), base_dir, check_keys=False)
    if spec.startswith("-") or not spec.strip():
        raise ConfigError(spec, None, "not a directory, and not a git revision")
    return _read_revision(spec, partners_dir, base_dir)


def _git(args: list[str], cwd: Path, what: str) -> bytes:
    try:
        done = subprocess.run(  # noqa: S603 - fixed program, arguments are not a shell line
            ["git", *args],  # noqa: S607 - git from PATH, as the operator runs it
            cwd=cwd,
            capture_output=True,
            timeout=GIT_TIMEOUT_S,
            check=False,
            env={**os.environ, "GIT_TERMINAL_PROMPT": "0"},
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConfigError(what, None, f"cannot run git ({exc.__class__.__name__})") from exc
    if done.returncode != 0:
        message = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise ConfigError(
            what,
            None,
            f"not a directory, and git could not read it: {message[-1] if message else 'error'}",
        )
    return done.stdout


def _read_revision(rev: str, partners_dir: Path, base_dir: Path) -> dict[str, Partner]:
    where = partners_dir if partners_dir.is_dir() else base_dir
    top = Path(_git(["rev-parse", "--show-toplevel"], where, rev).decode().strip())
    _git(["rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"], top, rev)
    try:
        relative = partners_dir.resolve().relative_to(top.resolve()).as_posix()
    except ValueError:
        raise ConfigError(
            rev, None, f"the partners directory {partners_dir} is not inside the git work tree"
        ) from None
    listing = _git(["ls-tree", "--name-only", rev, "--", f"{relative}/"], top, rev)
    names = [
        line
        for line in listing.decode("utf-8").splitlines()
        if line.endswith(".toml") and "/" not in line[len(relative) + 1 :]
    ]
    with tempfile.TemporaryDirectory(prefix="gateway-diff-") as temp:
        files = _written(rev, sorted(names), top, Path(temp))
        return load_partner_files(files, base_dir, check_keys=False)


def _written(rev: str, names: list[str], top: Path, temp: Path) -> Iterator[tuple[Path, str]]:
    """Each file `names` holds at `rev`, written into `temp`, with the name its messages show."""
    for name in names:
        text = _git(["show", f"{rev}:{name}"], top, f"{rev}:{name}")
        path = temp / Path(name).name
        path.write_bytes(text)
        yield path, f"{rev}:{name}"


# -- rendering --------------------------------------------------------------------------

_SIGN: Final = {"added": "+", "removed": "-", "changed": "~"}
_LABEL: Final = {"widens": "WIDENS", "narrows": "narrows", "changes": "changed"}


def _line(change: Change) -> str:
    if change.kind == "changed":
        return f"{change.what}: {change.before} → {change.after}"
    shown = change.after if change.kind == "added" else change.before
    if change.what in ("partner", "operation"):
        return f"{change.what} {change.kind}: {shown}"
    if change.what.startswith("field "):
        return f"{change.what} {change.kind} ({shown})"
    return f"{change.what} {change.kind}"


def _verdict(diff: PartnersDiff) -> str:
    counts = f"{diff.count('widens')} widen, {diff.count('narrows')} narrow, " + (
        f"{diff.count('changes')} other change(s)"
    )
    if not diff.changes:
        return "no partner changes: exit 0"
    if diff.widens:
        return f"{counts}: this widens what partners receive; a privacy review is needed (exit 1)"
    return f"{counts}: nothing widens what partners receive (exit 0)"


def _suffix(change: Change) -> str:
    label = _LABEL[change.effect]
    return f"  [{label}: {change.why}]" if change.why else f"  [{label}]"


def render_text(diff: PartnersDiff) -> str:
    """For a terminal: one block per partner, each operation's changes under it."""
    lines = [f"partners: {diff.old} → {diff.new}", ""]
    for partner, group in groupby(diff.changes, key=lambda c: c.partner):
        lines.append(partner)
        operation: str | None = None
        for change in group:
            sign = _SIGN[change.kind]
            if change.what == "operation" or change.operation is None:
                shown = _line(change)
                if change.what == "operation":
                    shown = f"operation {change.operation} {shown.removeprefix('operation ')}"
                lines.append(f"  {sign} {shown}{_suffix(change)}")
                operation = None
                continue
            if change.operation != operation:
                operation = change.operation
                lines.append(f"  operation {operation}")
            lines.append(f"    {sign} {_line(change)}{_suffix(change)}")
        lines.append("")
    lines.append(_verdict(diff))
    return "\n".join(lines) + "\n"


def _cell(value: str) -> str:
    return value.replace("|", "\\|").replace("\n", " ")


def render_markdown(diff: PartnersDiff) -> str:
    """For a pull request or a review ticket: one table, widening rows in bold."""
    out = [f"### Partner changes: `{diff.old}` → `{diff.new}`", "", f"**{_verdict(diff)}**", ""]
    if not diff.changes:
        return "\n".join(out) + "\n"
    out += [
        "| partner | operation | change | before | after | effect |",
        "|---|---|---|---|---|---|",
    ]
    for c in diff.changes:
        effect: str = "**widens**" if c.effect == "widens" else c.effect
        if c.why:
            effect += f" ({_cell(c.why)})"
        change = f"{c.what} {c.kind}"
        out.append(
            f"| {_cell(c.partner)} | {_cell(c.operation or '')} | {_cell(change)} | "
            f"{_cell(c.before)} | {_cell(c.after)} | {effect} |"
        )
    return "\n".join(out) + "\n"
