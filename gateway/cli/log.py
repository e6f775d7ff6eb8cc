"""The `gateway log …` commands: verify, reindex, search, export, checkpoint, prove, key,
rotate-key, forget-before.

Exit codes as everywhere: 0 ok, 1 a failure found (tampering, a proof that does not
check), 2 usage or configuration error. Long work reports progress on stderr when
stderr is a terminal.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, TextIO, TypeVar

from tqdm import tqdm  # type: ignore[import-untyped]

from gateway.cli.person import add_credential_options, cli_actions, reader
from gateway.cli.support import (
    EXIT_FOUND,
    EXIT_OK,
    Commands,
    RecordWriter,
    UsageError,
    add_command,
    add_format_option,
    add_group,
    columns,
    load,
    with_store,
)
from gateway.config.model import Config
from gateway.crypto.subject_keys import LogKeys, Period, forget_before
from gateway.errors import GatewayError
from gateway.log.actions import ActionTextReport, check_action_texts, find_actions, target
from gateway.log.audit import AuditReport, Problem, audit_store
from gateway.log.audit_pool import PARALLEL_FROM
from gateway.log.checkpoint import verifier_key
from gateway.log.entries import ACTIONS
from gateway.log.key_history import ensure_next_key
from gateway.log.offline import ProofDocumentError, b64, proof_document, verify_proof_document
from gateway.log.rotation import Rotation, rotate_log_key
from gateway.log.search import (
    CSV_COLUMNS,
    OUTCOME_FILTERS,
    Query,
    export_entries,
    search,
    subject_refs,
)
from gateway.log.service import LogIntegrityError, LogService, LogSigner
from gateway.log.witness_policy import load_witness_policy
from gateway.outbound.delivery import client_session
from gateway.outbound.witness_runner import Submitted, WitnessRunner
from gateway.outbound.witnesses import Cosigned
from gateway.policy.facts import parse_time
from gateway.store import Store, open_store
from gateway.store.records import StoredCheckpoint
from gateway.subject_id import subject_id_argument

__all__ = ["register"]

T = TypeVar("T")


class Progress:
    """Progress of long work on stderr (tqdm: bar, rate, time left), only when stderr is
    a terminal: a pipe, a file or a CI log gets nothing."""

    def __init__(self, what: str, total: int, stream: TextIO | None = None) -> None:
        out = stream or sys.stderr
        self._bar: Any = tqdm(
            total=total,
            desc=what,
            unit=" entries",
            file=out,
            disable=not out.isatty() or total <= 0,
            leave=False,  # the command's own summary line follows
            mininterval=0.2,
        )

    def update(self, done: int) -> None:
        """`done` entries so far (a running count, not an increment)."""
        self._bar.update(done - self._bar.n)

    def close(self) -> None:
        self._bar.close()


def _signer(config: Config) -> LogSigner:
    try:
        return LogSigner.load(config.keys_dir, config.log.origin)
    except (OSError, ValueError) as exc:
        raise UsageError(
            f"cannot read the log signing key in {config.keys_dir} ({type(exc).__name__}); "
            "run `gateway keys generate`"
        ) from None


def _with_service(args: argparse.Namespace, work: Callable[[LogService], Awaitable[T]]) -> T:
    async def run(store: Store, config: Config) -> T:
        return await work(LogService(store, _signer(config)))

    return with_store(args, run)


@contextmanager
def _damage_is_a_finding() -> Iterator[None]:
    try:
        yield
    except LogIntegrityError as exc:
        print(f"error: {exc.detail}", file=sys.stderr)
        raise _Found from None


class _Found(Exception):
    """A failure was found and reported: exit 1."""


def _found_exits_1(handler: Callable[[argparse.Namespace], int]) -> Callable[..., int]:
    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except _Found:
            return EXIT_FOUND

    return run


# -- verify ---------------------------------------------------------------------------------


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of processes (1 or more)")
    return value


def cmd_verify(args: argparse.Namespace) -> int:
    texts: list[ActionTextReport] = []  # what the check of action texts found

    async def work(store: Store, config: Config) -> tuple[AuditReport, Submitted | None]:
        keys = args.key or _signer(config).verifier_keys
        counted = await store.log_size()
        jobs = args.jobs or (os.cpu_count() or 1 if counted >= PARALLEL_FROM else 1)
        opener = functools.partial(open_store, config.storage_url, config.root)
        progress = Progress("verifying", counted)
        try:
            report = await audit_store(
                store, keys, config.log.origin, progress=progress.update, jobs=jobs, opener=opener
            )
        finally:
            progress.close()
        # The tables' free text against the hashes their action entries hold.
        try:
            found = await check_action_texts(store, LogKeys.load(config.keys_dir))
        except GatewayError as exc:
            report.problems.append(Problem(f"action texts not checked: {exc.detail}"))
        else:
            texts.append(found)
            report.problems.extend(
                Problem(message, start=index) for index, message in found.problems
            )
        if not report.ok or config.log.witness_policy is None:
            return report, None
        # The witnesses' view: the latest checkpoint submitted to each (add-checkpoint). A
        # witness that cosigned a larger tree than this log is a rollback alarm.
        latest = await store.latest_checkpoint()
        if latest is None:
            return report, None
        service = LogService(store, _signer(config))
        return report, await _submit_to_witnesses(store, service, config, latest)

    started = time.monotonic()
    report, witnessed = with_store(args, work)
    elapsed = time.monotonic() - started
    alarmed = witnessed is not None and bool(witnessed.alarms)
    summary = texts[0].summary() if texts else "action texts not checked"
    if not args.json:
        print(summary, file=sys.stderr)
    if args.json:
        verdict = {**_report_json(report, elapsed), "action_texts": summary}
        if witnessed is not None:
            verdict["witnesses"] = _witnesses_json(witnessed)
        print(json.dumps(verdict, indent=2))
        return EXIT_OK if report.ok and not alarmed else EXIT_FOUND
    if report.ok:
        if witnessed is not None and _report_witnesses(witnessed):
            return EXIT_FOUND
        print(
            f"ok: {report.entries} entries and {report.checkpoints} checkpoint(s) verified "
            f"in {elapsed:.1f}s; root {b64(report.root)} at size {report.entries}; "
            f"{_projection_summary(report)}"
            + ("" if witnessed is None else "; " + _witness_summary(witnessed))
        )
        for seq, size in report.key_switches:
            print(f"log key switched at checkpoint #{seq} (size {size}), signed by both keys")
        return EXIT_OK
    for problem in report.problems[: args.max_problems]:
        print(f"TAMPERED: {problem.message}")
    if len(report.problems) > args.max_problems:
        print(f"… and {len(report.problems) - args.max_problems} more problem(s)")
    first = report.first_bad
    if first is not None and first.start is not None:
        if first.exact:
            print(f"first bad index: {first.start}")
        else:
            print(f"first bad index: between {first.start} and {(first.end or 1) - 1}")
    return EXIT_FOUND


def _projection_summary(report: AuditReport) -> str:
    return (
        f"search projection checked up to its mark {report.projected}, "
        f"{report.lag} entr{'y' if report.lag == 1 else 'ies'} not projected yet"
    )


def cmd_reindex(args: argparse.Namespace) -> int:
    """Rebuild the search projection from the entries' bytes, then verify the log."""

    async def work(store: Store, config: Config) -> tuple[int, AuditReport]:
        projected = await store.rebuild_projection()
        keys = _signer(config).verifier_keys
        return projected, await audit_store(store, keys, config.log.origin)

    started = time.monotonic()
    projected, report = with_store(args, work)
    print(
        f"reindexed: the search projection rebuilt from {projected} entries in "
        f"{time.monotonic() - started:.1f}s"
    )
    if report.ok:
        print(f"ok: {report.entries} entries verified; {_projection_summary(report)}")
        return EXIT_OK
    for problem in report.problems[:20]:
        print(f"TAMPERED: {problem.message}")
    print(
        "the projection was derived from the entries as stored, and they do not verify: "
        "restore the database from a backup, then run `gateway log reindex` again"
    )
    return EXIT_FOUND


def _report_json(report: AuditReport, elapsed: float) -> dict[str, object]:
    """`log verify --json`: the verdict for scripts (same exit codes as the text)."""
    first = report.first_bad
    return {
        "ok": report.ok,
        "entries": report.entries,
        "checkpoints": report.checkpoints,
        "root": b64(report.root),
        "seconds": round(elapsed, 3),
        "projected_size": report.projected,
        "projection_lag": report.lag,
        "problems": [p.message for p in report.problems],
        "key_switches": [{"checkpoint": seq, "size": size} for seq, size in report.key_switches],
        "first_bad": None
        if first is None or first.start is None
        else {"start": first.start, "end": first.end, "exact": first.exact},
    }


# -- search and export ----------------------------------------------------------------------


def _moment(text: str | None, name: str) -> datetime | None:
    return None if text is None else parse_time(text, name)


SEARCH_COLUMNS: Final = columns(
    "index", "time", "outcome", "partner", "operation", "purpose", "legal_basis", "disclosure_id"
)
SEARCH_HEADER: Final = (
    "   INDEX  TIME                      OUTCOME   PARTNER               OPERATION"
    "           PURPOSE               BASIS               DISCLOSURE"
)


def _search_flat(record: Mapping[str, Any]) -> dict[str, Any]:
    """A found disclosure (Found.as_json) as the cells of a CSV row or a text line."""
    entry = record["entry"]
    return {
        "index": record["index"],
        "time": entry.get("time"),
        "outcome": record["outcome"],
        **{key: entry.get(key) for key in ("partner", "operation", "purpose", "legal_basis")},
        "disclosure_id": entry.get("disclosure_id"),
    }


def _search_line(record: Mapping[str, Any]) -> str:
    row = _search_flat(record)
    return "  ".join(
        [
            str(row["index"]).rjust(8),
            str(row["time"] or ""),
            str(row["outcome"]).ljust(8),
            str(row["partner"] or "-").ljust(20),
            str(row["operation"] or "-").ljust(18),
            str(row["purpose"] or "-").ljust(20),
            str(row["legal_basis"] or "-").ljust(18),
            str(row["disclosure_id"] or ""),
        ]
    )


def cmd_search(args: argparse.Namespace) -> int:
    since, until = _moment(args.since, "--since"), _moment(args.until, "--until")

    async def work(store: Store, config: Config) -> int:
        refs = None
        if args.subject is not None:
            who = await reader(args, config, READERS)
            await cli_actions(store, config).record(who, "search_by_subject", subject=args.subject)
            # Hashed with every period key still held: forgotten periods find nothing.
            keys = LogKeys.load(config.keys_dir)
            refs = await subject_refs(store, keys, args.subject, since=since, until=until)
        query = Query(
            subject_refs=refs,
            partner=args.partner,
            purpose=args.purpose,
            legal_basis=args.basis,
            outcome=args.outcome,
            since=since,
            until=until,
        )
        out = RecordWriter(
            args.format,
            SEARCH_COLUMNS,
            json_lines=True,
            flat=_search_flat,
            text_line=_search_line,
            text_header=SEARCH_HEADER,
        )
        async for found in search(store, query):
            out.write(found.as_json())
            if args.limit is not None and out.count >= args.limit:
                break
        out.close()
        if args.format == "text":
            print(f"{out.count} disclosure(s)", file=sys.stderr)
        return EXIT_OK

    return with_store(args, work)


EXPORT_HEADER: Final = (
    "   INDEX  TIME                      KIND      PARTNER               OPERATION"
    "           OUTCOME   DISCLOSURE"
)


def _export_flat(record: Mapping[str, Any]) -> dict[str, Any]:
    """An entry's CSV cells: the known columns, anything else as JSON under 'extra'."""
    known = set(CSV_COLUMNS)
    extra = {k: v for k, v in record.items() if k not in known}
    return {**record, "extra": extra or None}


def _export_line(record: Mapping[str, Any]) -> str:
    return "  ".join(
        [
            str(record["index"]).rjust(8),
            str(record.get("time") or ""),
            str(record.get("kind") or "-").ljust(8),
            str(record.get("partner") or "-").ljust(20),
            str(record.get("operation") or "-").ljust(18),
            str(record.get("outcome") or "-").ljust(8),
            str(record.get("disclosure_id") or ""),
        ]
    )


def cmd_export(args: argparse.Namespace) -> int:
    async def work(store: Store, config: Config) -> int:
        who = await reader(args, config, READERS)
        # The log as it was when asked: the export's own entry (recorded first) is the next.
        end = await cli_actions(store, config).record(who, "export", target=target("log"))
        progress = Progress("exporting", end)
        out: TextIO = (
            sys.stdout
            if args.output in (None, "-")
            else open(args.output, "w", encoding="utf-8", newline="")
        )
        try:
            writer = RecordWriter(
                args.format,
                {column: column.upper() for column in CSV_COLUMNS},
                out=out,
                json_lines=True,
                flat=_export_flat,
                text_line=_export_line,
                text_header=EXPORT_HEADER,
            )
            async for index, entry in export_entries(store, end=end):
                writer.write({"index": index, **entry})
                progress.update(writer.count)
            writer.close()
        finally:
            progress.close()
            if out is not sys.stdout:
                out.close()
        print(f"exported {writer.count} entries", file=sys.stderr)
        return EXIT_OK

    return with_store(args, work)


ACTION_COLUMNS: Final = columns("index", "time", "actor", "credential", "action", "target")


def cmd_actions(args: argparse.Namespace) -> int:
    async def work(store: Store, config: Config) -> int:
        out = RecordWriter(args.format, ACTION_COLUMNS, empty_text="no act recorded")
        async for entry in find_actions(store, actor=args.actor, action=args.action):
            out.write({"index": entry.index, **entry.data})
        out.close()
        return EXIT_OK

    return with_store(args, work)


# -- checkpoints and proofs -----------------------------------------------------------------


def cmd_checkpoint(args: argparse.Namespace) -> int:
    async def work(store: Store, config: Config) -> int:
        service = LogService(store, _signer(config))
        with _damage_is_a_finding():
            await service.prepare()
            checkpoint = await service.checkpoint()
        if config.log.witness_policy is None:
            print(checkpoint.note, end="")
            return EXIT_OK
        submitted = await _submit_to_witnesses(store, service, config, checkpoint)
        print(checkpoint.note if submitted is None else submitted.cosigned_note, end="")
        if submitted is not None and _report_witnesses(submitted):
            return EXIT_FOUND
        return EXIT_OK

    return with_store(args, work)


# -- witnesses ------------------------------------------------------------------------------


async def _submit_to_witnesses(
    store: Store, service: LogService, config: Config, checkpoint: StoredCheckpoint
) -> Submitted | None:
    """Submit `checkpoint` to every witness of the configured policy now (what the running
    gateway does in the background) and store what they cosigned."""
    assert config.log.witness_policy is not None
    policy = load_witness_policy(config.log.witness_policy)
    session = client_session()
    try:
        runner = WitnessRunner(store, session, policy, service.consistency_proof)
        with _damage_is_a_finding():
            return await runner.submit(checkpoint)
    finally:
        await session.close()


def _report_witnesses(submitted: Submitted) -> bool:
    """Say on stderr what did not go well; True on a rollback alarm (exit 1)."""
    for name, outcome in submitted.witnessing.outcomes.items():
        if not isinstance(outcome, Cosigned) and outcome not in submitted.alarms:
            print(
                f"warning: witness {name} did not cosign (not a failure): {outcome.reason}",
                file=sys.stderr,
            )
    for alarm in submitted.alarms:
        print(
            f"error: ROLLBACK ALARM: witness {alarm.witness} has cosigned size "
            f"{alarm.witness_size}, the log has {alarm.log_size} entries ({alarm.reason}); "
            "the log may have been rolled back or forked: see README, Witnessed log",
            file=sys.stderr,
        )
    if not submitted.quorum_met and not submitted.alarms:
        print(
            f"warning: the witness quorum is not met for the checkpoint of size "
            f"{submitted.checkpoint.size}; the running gateway submits it again",
            file=sys.stderr,
        )
    return bool(submitted.alarms)


def _witness_summary(submitted: Submitted) -> str:
    cosigned = sorted(submitted.witnessing.cosigned)
    met = "quorum met" if submitted.quorum_met else "quorum NOT met"
    return (
        f"witnesses: {met} at size {submitted.checkpoint.size} "
        f"(cosigned by {', '.join(cosigned) or 'none'})"
    )


def _witnesses_json(submitted: Submitted) -> dict[str, object]:
    return {
        "size": submitted.checkpoint.size,
        "quorum_met": submitted.quorum_met,
        "outcomes": {
            name: type(outcome).__name__ for name, outcome in submitted.witnessing.outcomes.items()
        },
        "alarms": [
            {"witness": a.witness, "witness_size": a.witness_size, "log_size": a.log_size}
            for a in submitted.alarms
        ],
    }


def cmd_prove(args: argparse.Namespace) -> int:
    async def work(service: LogService) -> int:
        with _damage_is_a_finding():
            index, raw, _ = await service.record(args.index)
            checkpoint = await service.latest_checkpoint()
            if checkpoint is None or checkpoint.size <= index:
                await service.prepare()
                checkpoint = await service.checkpoint()
            proof = await service.inclusion_proof(index, checkpoint.size)
        doc = proof_document(
            origin=service.origin,
            index=index,
            entry=json.loads(raw),
            leaf=proof.leaf_hash,
            tree_size=proof.tree_size,
            hashes=proof.hashes,
            checkpoint_note=checkpoint.note,
        )
        print(json.dumps(doc, indent=2, ensure_ascii=False))
        return EXIT_OK

    return _with_service(args, work)


def cmd_verify_proof(args: argparse.Namespace) -> int:
    keys: list[str] = args.key or []
    if not keys and args.key_file:
        # One vkey a line, as GET /v1/log/key serves them (the current key, then retired ones).
        text = Path(args.key_file).read_text(encoding="utf-8")
        keys = [line.strip() for line in text.splitlines() if line.strip()]
    if not keys:
        keys = _signer(load(args)).verifier_keys
    try:
        text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text(encoding="utf-8")
        doc = json.loads(text)
    except (OSError, ValueError) as exc:
        raise UsageError(f"{args.file}: not a readable JSON file ({type(exc).__name__})") from None
    try:
        checkpoint = verify_proof_document(doc, keys)
    except ProofDocumentError as exc:
        print(f"FAILED: {exc}")
        return EXIT_FOUND
    print(
        f"ok: entry {doc['index']} is in the log {checkpoint.origin} at tree size "
        f"{checkpoint.size} (checkpoint signature verified)"
    )
    return EXIT_OK


def cmd_key(args: argparse.Namespace) -> int:
    signer = _signer(load(args))
    for key in signer.verifier_keys if args.all else [signer.verifier_key]:
        print(key)
    return EXIT_OK


def cmd_rotate_key(args: argparse.Namespace) -> int:
    config = load(args)
    current = _signer(config).verifier_key
    try:
        successor, created = ensure_next_key(config.keys_dir)
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot make or read the next log key: {exc}") from None
    next_vkey = verifier_key(config.log.origin, successor.public_key())
    if args.prepare:
        print(f"{'created' if created else 'already prepared'}: next log key {next_vkey}")
        print(
            "give it to every witness (add `--log` with it beside the current key), then run "
            "`gateway log rotate-key` to switch"
        )
        return EXIT_OK

    async def work(store: Store, config: Config) -> Rotation:
        with _damage_is_a_finding():
            return await rotate_log_key(store, config.keys_dir, config.log.origin)

    rotation = with_store(args, work)
    print(f"retired log key {current}")
    print(f"signing log key {rotation.current}")
    print(
        f"switch checkpoint #{rotation.switch.seq} (size {rotation.switch.size}), signed by "
        "both keys:"
    )
    print(rotation.switch.note, end="")
    print(
        "copy the keys directory to every instance and restart them; until then an instance "
        "holding only the old key signs no checkpoint"
    )
    return EXIT_OK


def _confirm_destruction(what: str, yes: bool) -> None:
    """Ask before an irreversible act: a typed `yes` on a terminal, or `--yes`.

    Without a terminal on stdin and without `--yes` it refuses (exit 2): a script
    must say it means it, and a pipe must never answer for a person.
    """
    if yes:
        return
    if not sys.stdin.isatty():
        raise UsageError(
            f"this would {what}, and it cannot be undone; no terminal to confirm on: "
            "pass --yes to confirm"
        )
    print(f"This will {what}. It cannot be undone.", file=sys.stderr)
    print("Type yes to go on: ", end="", file=sys.stderr, flush=True)
    if sys.stdin.readline().strip() != "yes":
        raise UsageError("not confirmed; nothing was destroyed")


def cmd_forget_before(args: argparse.Namespace) -> int:
    config = load(args)
    moment = parse_time(args.date, "DATE")
    period = Period.of(moment)
    try:
        first = LogKeys.load(config.keys_dir).first_period  # a file, even on a fresh install
        if period <= first:
            print(f"nothing to forget: the keys start at {first}")
            return EXIT_OK
        what = (
            f"destroy the subject keys of {first} to {period.previous()} in {config.keys_dir}: "
            "subject references of those months can no longer be linked to anyone"
        )
        if args.dry_run:
            print(f"would {what}")
            return EXIT_OK
        current = Period.of(datetime.now(UTC))
        if period > current:  # refused before asking: forget_before would refuse it anyway
            raise ValueError(
                f"cannot forget up to {period}: the current period {current} is still written"
            )
        _confirm_destruction(what, args.yes)
        old, new = forget_before(config.keys_dir, period, now=lambda: datetime.now(UTC))
    except (OSError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    if old == new:
        print(f"nothing to forget: the keys start at {new}")
        return EXIT_OK
    print(
        f"destroyed the subject keys of {old} to {new.previous()}: subject references and "
        "data digests of those months can no longer be linked to anyone; every entry, hash "
        "and checkpoint is unchanged. Copy the key file to every instance."
    )
    return EXIT_OK


# A search by subject and an export are reads of personal scope: each is an `action` entry.
READERS: Final = ("reviewer", "rights_officer")
READ_AS: Final = "who reads (recorded in the log; default: the shell's user, as host:<user>)"


def register(commands: Commands) -> None:
    """Add this module's commands to the `gateway` parser."""
    group = add_group(commands, "log", "the disclosure log: verify, search, export, prove")

    verify = add_command(
        group,
        "verify",
        _found_exits_1(cmd_verify),
        "recompute every leaf and the tree, check every checkpoint, ask each witness of the "
        "policy for its view; exit 1 on tampering or a rollback alarm",
    )
    verify.add_argument(
        "--key",
        action="append",
        help="verifier key text; repeat for a rotated log, newest first (default: the keys "
        "in the keys directory)",
    )
    verify.add_argument(
        "--max-problems", type=int, default=20, help="problems printed at most (default 20)"
    )
    verify.add_argument("--json", action="store_true", help="print the verdict as JSON")
    verify.add_argument(
        "--jobs",
        type=_positive,
        help="processes checking the rows (default: every core, one below "
        f"{PARALLEL_FROM:,} entries)",
    )

    add_command(
        group,
        "reindex",
        cmd_reindex,
        "rebuild the search projection (the columns searches and reports read) from the "
        "entries' bytes, then verify the log; exit 1 if the entries do not verify",
    )

    found = add_command(
        group, "search", cmd_search, "find disclosures (a subject is hashed before lookup)"
    )
    found.add_argument(
        "--subject",
        type=subject_id_argument,
        help="subject id (hashed with every period key still held)",
    )
    found.add_argument("--partner")
    found.add_argument("--purpose")
    found.add_argument("--basis", help="legal basis")
    found.add_argument("--outcome", choices=OUTCOME_FILTERS)
    found.add_argument("--since", help="from this date or RFC 3339 time (inclusive)")
    found.add_argument("--until", help="up to this date or RFC 3339 time (exclusive)")
    found.add_argument("--limit", type=int, help="at most this many disclosures")
    add_format_option(found, default="text", old_json_flag=True)  # json: one line each
    add_credential_options(found, READ_AS, required=False)

    export = add_command(group, "export", cmd_export, "every entry in index order")
    # json is JSON lines, one entry each (the value was called jsonl before --format was
    # shared by every command; that name stays accepted).
    add_format_option(export, default="json", old_names={"jsonl": "json"})
    export.add_argument("--output", help="file to write (default: stdout)")
    add_credential_options(export, READ_AS, required=False)

    acts = add_command(
        group, "actions", cmd_actions, "people's acts and reads: who, which credential, what"
    )
    acts.add_argument("--actor", help="only the acts of this reviewer or caller id")
    acts.add_argument("--action", choices=sorted(ACTIONS), help="only this kind of act")
    add_format_option(acts, default="text")

    add_command(
        group,
        "checkpoint",
        _found_exits_1(cmd_checkpoint),
        "sign a checkpoint of the whole log now (the latest if nothing is new), submit it to "
        "the witnesses of [log] witness_policy and print it with their cosignatures; exit 1 "
        "on a rollback alarm",
    )

    prove = add_command(
        group,
        "prove",
        _found_exits_1(cmd_prove),
        "print an entry, its inclusion proof and a checkpoint as one JSON document",
    )
    prove.add_argument("index", type=int)

    check = add_command(
        group,
        "verify-proof",
        cmd_verify_proof,
        "check a `gateway log prove` document with only the public key; exit 1 if it fails",
    )
    check.add_argument("file", help="the proof document (- for stdin)")
    check.add_argument(
        "--key", action="append", help="verifier key text (`gateway log key`); repeatable"
    )
    check.add_argument("--key-file", help="file holding the verifier key(s), one a line")

    key = add_command(
        group, "key", cmd_key, "print the log's public verifier key (signed-note format)"
    )
    key.add_argument(
        "--all",
        action="store_true",
        help="also the keys retired by rotations, newest first (as GET /v1/log/key)",
    )

    rotate = add_command(
        group,
        "rotate-key",
        _found_exits_1(cmd_rotate_key),
        "switch the log to a new signing key at a checkpoint signed by both keys",
    )
    rotate.add_argument(
        "--prepare",
        action="store_true",
        help="only make the next key and print its vkey (to give to the witnesses first)",
    )

    forget = add_command(
        group,
        "forget-before",
        cmd_forget_before,
        "destroy the subject keys of every month before DATE's month (irreversible)",
    )
    forget.add_argument("date", metavar="DATE", help="YYYY-MM-DD")
    forget.add_argument("--dry-run", action="store_true", help="only say what would go")
    forget.add_argument(
        "--yes",
        action="store_true",
        help="confirm without being asked (needed when stdin is not a terminal)",
    )
