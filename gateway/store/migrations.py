"""The schema's versions, written once for both databases, and the code that applies them.

Each version's statements are templates: where SQLite and PostgreSQL name a type or a
default differently, a ``{TOKEN}`` stands in for it and each :class:`SchemaDialect`
says what it writes there (a time is ``TEXT`` in SQLite, ``timestamptz`` in PostgreSQL).
A statement only one database needs, or that each writes its own way (extracting JSON),
is a :class:`PerDialect`.

The text rendered for SQLite is, byte for byte, what earlier releases ran: SQLite keeps
each CREATE statement's text as the table's definition, and stores written by 0.2.0
must upgrade to exactly the schema a fresh store gets (tests/integration/test_upgrade_fixtures.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from gateway.store.records import LEGACY_INSTANCE, Migration

__all__ = [
    "POSTGRES",
    "SQLITE",
    "SQLITE_EPOCH",
    "PerDialect",
    "SchemaDialect",
    "apply_migrations",
    "migrations_for",
]


@dataclass(frozen=True)
class SchemaDialect:
    """How one database spells what the templates leave open."""

    name: str
    tokens: Mapping[str, str]
    # Records an applied version: its number, description and (if a third placeholder)
    # the time, which `applied_at` gives.
    record_version: str
    applied_at: Callable[[], tuple[object, ...]]

    def render(self, template: str | PerDialect) -> str | None:
        """The statement in this dialect; None when it has none."""
        if isinstance(template, PerDialect):
            return template.sqlite if self.name == "sqlite" else template.postgresql
        return template.format_map(self.tokens)

    @property
    def schema_version_table(self) -> str:
        return _SCHEMA_VERSION_TABLE.format_map(self.tokens)


@dataclass(frozen=True)
class PerDialect:
    """A statement each database writes its own way (None: that one has no such step)."""

    sqlite: str | None
    postgresql: str | None


# The stored form of the epoch in SQLite (times are fixed-width UTC text there).
SQLITE_EPOCH: Final = "1970-01-01T00:00:00.000000+00:00"

_COMMON: Final = {"LEGACY_INSTANCE": LEGACY_INSTANCE}


def _sqlite_now() -> tuple[object, ...]:
    return (datetime.now(UTC).isoformat(timespec="microseconds"),)


SQLITE: Final = SchemaDialect(
    "sqlite",
    {
        **_COMMON,
        # Times as fixed-width UTC ISO 8601 text, sets as sorted JSON arrays.
        "TIME": "TEXT",
        "SET": "TEXT",
        "BOOL": "INTEGER",
        "FALSE": "0",
        "BYTES": "BLOB",
        "DATE": "TEXT",
        # INTEGER PRIMARY KEY is the rowid: SQLite has no wider integer.
        "BIGINT": "INTEGER",
        "SMALLINT": "INTEGER",
        "SERIAL_KEY": "INTEGER PRIMARY KEY AUTOINCREMENT",
        "IDENTITY_KEY": "INTEGER PRIMARY KEY AUTOINCREMENT",
        "LENGTH": "length",
        "DEFAULT_NOW": "",
        "WITHOUT_ROWID": " WITHOUT ROWID",
        "EPOCH": f"'{SQLITE_EPOCH}'",
        "AS_TEXT": "",
    },
    "INSERT INTO schema_version (version, description, applied_at) VALUES (?, ?, ?)",
    _sqlite_now,
)

POSTGRES: Final = SchemaDialect(
    "postgresql",
    {
        **_COMMON,
        "TIME": "timestamptz",
        "SET": "text[]",
        "BOOL": "boolean",
        "FALSE": "false",
        "BYTES": "bytea",
        "DATE": "date",
        "BIGINT": "bigint",
        "SMALLINT": "smallint",
        "SERIAL_KEY": "bigserial PRIMARY KEY",
        "IDENTITY_KEY": "bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
        "LENGTH": "octet_length",
        "DEFAULT_NOW": " DEFAULT now()",
        "WITHOUT_ROWID": "",
        "EPOCH": "'epoch'",
        "AS_TEXT": "::text",
    },
    "INSERT INTO schema_version (version, description) VALUES ($1, $2)",
    tuple,
)

_SCHEMA_VERSION_TABLE = """
    CREATE TABLE IF NOT EXISTS schema_version (
        version INTEGER PRIMARY KEY,
        description TEXT NOT NULL,
        applied_at {TIME} NOT NULL{DEFAULT_NOW}
    )
"""

_MIGRATIONS: Final[tuple[tuple[int, str, tuple[str | PerDialect, ...]], ...]] = (
    (
        1,
        "consents, subjects, lawful requests, idempotency keys, disclosure log, checkpoints",
        (
            """
            CREATE TABLE consents (
                id TEXT PRIMARY KEY,
                subject TEXT NOT NULL,
                purposes {SET} NOT NULL,
                partners {SET} NOT NULL,
                partner_categories {SET} NOT NULL,
                special_categories {SET} NOT NULL,
                policy_version TEXT NOT NULL,
                obtained_at {TIME} NOT NULL,
                expires_at {TIME},
                withdrawn_at {TIME},
                method TEXT NOT NULL,
                evidence TEXT NOT NULL
            )
            """,
            "CREATE INDEX consents_by_subject ON consents (subject)",
            """
            CREATE TABLE subjects (
                subject TEXT PRIMARY KEY,
                restricted {BOOL} NOT NULL DEFAULT {FALSE},
                restriction_reason TEXT NOT NULL DEFAULT '',
                restriction_changed_at {TIME},
                date_of_birth {DATE}
            )
            """,
            """
            CREATE TABLE legal_requests (
                id TEXT PRIMARY KEY,
                authority TEXT NOT NULL,
                reference TEXT NOT NULL,
                instrument TEXT NOT NULL,
                subjects {SET} NOT NULL,
                partners {SET} NOT NULL,
                received_at {TIME} NOT NULL,
                registered_by TEXT NOT NULL,
                status TEXT NOT NULL CHECK (status IN ('pending', 'approved'))
            )
            """,
            "CREATE INDEX legal_requests_by_status ON legal_requests (status, received_at)",
            """
            CREATE TABLE legal_request_approvals (
                request_id TEXT NOT NULL REFERENCES legal_requests (id),
                reviewer_id TEXT NOT NULL,
                approved_at {TIME} NOT NULL,
                PRIMARY KEY (request_id, reviewer_id)
            )
            """,
            """
            CREATE TABLE idempotency_keys (
                caller_id TEXT NOT NULL,
                key TEXT NOT NULL,
                request_hash TEXT NOT NULL,
                claimed_at {TIME} NOT NULL{DEFAULT_NOW},
                completed {BOOL} NOT NULL DEFAULT {FALSE},
                status INTEGER,
                headers TEXT,
                body {BYTES},
                PRIMARY KEY (caller_id, key)
            )
            """,
            # In SQLite idx is the rowid: appends and range reads walk the table's own b-tree.
            """
            CREATE TABLE log_entries (
                idx {BIGINT} PRIMARY KEY CHECK (idx >= 0),
                entry {BYTES} NOT NULL,
                kind TEXT NOT NULL,
                disclosure_id TEXT NOT NULL,
                subject_ref TEXT,
                partner TEXT,
                logged_at {TIME} NOT NULL
            )
            """,
            "CREATE INDEX log_entries_by_disclosure ON log_entries (disclosure_id, kind)",
            "CREATE INDEX log_entries_by_subject ON log_entries (subject_ref, idx)",
            "CREATE INDEX log_entries_by_partner ON log_entries (partner, idx)",
            "CREATE INDEX log_entries_by_kind ON log_entries (kind, idx)",
            "CREATE INDEX log_entries_by_time ON log_entries (logged_at)",
            # PostgreSQL: one row whose lock serializes appenders across instances (see
            # gateway.store.postgres). SQLite's write lock already does that.
            PerDialect(
                None,
                """
            CREATE TABLE log_counter (
                singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
                next_index bigint NOT NULL CHECK (next_index >= 0)
            )
            """,
            ),
            PerDialect(None, "INSERT INTO log_counter (singleton, next_index) VALUES (true, 0)"),
            """
            CREATE TABLE checkpoints (
                seq {SERIAL_KEY},
                size {BIGINT} NOT NULL CHECK (size >= 0),
                note TEXT NOT NULL,
                created_at {TIME} NOT NULL
            )
            """,
        ),
    ),
    (
        2,
        "disclosure log: leaf hashes, search columns, Merkle subtree hashes",
        (
            "ALTER TABLE log_entries ADD COLUMN leaf_hash {BYTES} "
            "CHECK (leaf_hash IS NULL OR {LENGTH}(leaf_hash) = 32)",
            "ALTER TABLE log_entries ADD COLUMN purpose TEXT",
            "ALTER TABLE log_entries ADD COLUMN legal_basis TEXT",
            "ALTER TABLE log_entries ADD COLUMN outcome TEXT",
            # Rows of schema 1 get their search columns from their own JSON; their leaf
            # hashes are filled in by gateway.log (storage never hashes).
            PerDialect(
                """
            UPDATE log_entries SET
                purpose = json_extract(CAST(entry AS TEXT), '$.purpose'),
                legal_basis = json_extract(CAST(entry AS TEXT), '$.legal_basis'),
                outcome = CASE kind
                    WHEN 'refused' THEN 'refused'
                    WHEN 'outcome' THEN json_extract(CAST(entry AS TEXT), '$.outcome')
                END
            WHERE json_valid(CAST(entry AS TEXT))
            """,
                """
            UPDATE log_entries SET
                purpose = convert_from(entry, 'UTF8')::jsonb ->> 'purpose',
                legal_basis = convert_from(entry, 'UTF8')::jsonb ->> 'legal_basis',
                outcome = CASE kind
                    WHEN 'refused' THEN 'refused'
                    WHEN 'outcome' THEN convert_from(entry, 'UTF8')::jsonb ->> 'outcome'
                END
            """,
            ),
            "CREATE INDEX log_entries_by_outcome ON log_entries (outcome, idx)",
            # Empty once every leaf hash is there, so finding none costs nothing.
            "CREATE INDEX log_entries_unhashed ON log_entries (idx) WHERE leaf_hash IS NULL",
            """
            CREATE TABLE log_nodes (
                level {SMALLINT} NOT NULL CHECK (level > 0),
                idx {BIGINT} NOT NULL CHECK (idx >= 0),
                hash {BYTES} NOT NULL CHECK ({LENGTH}(hash) = 32),
                PRIMARY KEY (level, idx)
            ){WITHOUT_ROWID}
            """,
        ),
    ),
    (
        3,
        "justifications of emergency disclosures",
        (
            """
            CREATE TABLE justifications (
                disclosure_id TEXT PRIMARY KEY,
                reviewer_id TEXT NOT NULL,
                text TEXT NOT NULL,
                at {TIME} NOT NULL
            )
            """,
        ),
    ),
    (
        4,
        "instances and their heartbeats, for crash recovery with several instances",
        (
            """
            CREATE TABLE instances (
                id TEXT PRIMARY KEY,
                host TEXT NOT NULL,
                pid INTEGER NOT NULL,
                started_at {TIME} NOT NULL,
                heartbeat_at {TIME} NOT NULL,
                claimed_by TEXT,
                recovered_at {TIME}
            )
            """,
            # Intents written before this schema name no instance; they belong to this
            # one, dead since the epoch, so the first recovery sweep takes them.
            "INSERT INTO instances (id, host, pid, started_at, heartbeat_at) "
            "VALUES ('{LEGACY_INSTANCE}', '', 0, {EPOCH}, {EPOCH})",
        ),
    ),
    (
        5,
        "partner suspensions and their history",
        (
            # One row per partner suspended now; instances read the whole (small) table.
            """
            CREATE TABLE partner_suspensions (
                partner_id TEXT PRIMARY KEY,
                reason TEXT NOT NULL,
                suspended_by TEXT NOT NULL,
                suspended_at {TIME} NOT NULL
            )
            """,
            # Every suspend and resume, appended in the same transaction, never rewritten.
            """
            CREATE TABLE partner_suspension_events (
                seq {IDENTITY_KEY},
                partner_id TEXT NOT NULL,
                action TEXT NOT NULL CHECK (action IN ('suspend', 'resume')),
                reason TEXT NOT NULL,
                actor TEXT NOT NULL,
                at {TIME} NOT NULL
            )
            """,
            "CREATE INDEX partner_suspension_events_by_partner "
            "ON partner_suspension_events (partner_id, seq)",
        ),
    ),
    (
        6,
        "profiles as opaque text, sealed lawful-request subject lists",
        (
            # A date of birth becomes the profile's text; gateway.store.protected then seals
            # it (and turns subject ids into keyed references) after this migration.
            "ALTER TABLE subjects ADD COLUMN profile TEXT",
            "UPDATE subjects SET profile = date_of_birth{AS_TEXT} WHERE date_of_birth IS NOT NULL",
            "ALTER TABLE subjects DROP COLUMN date_of_birth",
            "ALTER TABLE legal_requests ADD COLUMN sealed_subjects TEXT NOT NULL DEFAULT ''",
        ),
    ),
    (
        7,
        "witness sizes and cosigned checkpoints",
        (
            # The note with its verified cosignature lines appended, once a witness cosigned
            # it (gateway.outbound.witness_runner); the signed note itself stays as it was.
            "ALTER TABLE checkpoints ADD COLUMN cosigned_note TEXT",
            # Per witness of the policy: the size it last cosigned (the old size of the next
            # add-checkpoint) and the checkpoint that was. Only ever grows (see statements).
            """
            CREATE TABLE witness_sizes (
                witness TEXT PRIMARY KEY,
                size {BIGINT} NOT NULL CHECK (size >= 0),
                checkpoint_seq {BIGINT} NOT NULL,
                updated_at {TIME} NOT NULL
            )
            """,
        ),
    ),
    (
        8,
        "the notice outbox",
        (
            # A notice a partner did not accept within the delivery retries, tried again on
            # a growing schedule (gateway.rights.outbox). `payload` is sealed at rest (the
            # subject and identifiers to send); a row is never deleted: `failed` stays shown.
            """
            CREATE TABLE notice_outbox (
                id TEXT PRIMARY KEY,
                kind TEXT NOT NULL,
                partner TEXT NOT NULL,
                operation TEXT NOT NULL,
                reference TEXT NOT NULL,
                payload TEXT NOT NULL,
                status TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'failed')),
                attempts INTEGER NOT NULL DEFAULT 0,
                created_at {TIME} NOT NULL,
                next_at {TIME} NOT NULL,
                last_error TEXT NOT NULL DEFAULT '',
                disclosure_id TEXT NOT NULL DEFAULT '',
                lease_owner TEXT NOT NULL DEFAULT '',
                lease_until {TIME},
                done_at {TIME}
            )
            """,
            "CREATE INDEX notice_outbox_due ON notice_outbox (status, next_at)",
        ),
    ),
    (
        9,
        "an index for the retention sweep of idempotency keys",
        # The sweep deletes completed keys claimed before a time (gateway.ops.retention);
        # without it each sweep would read every key kept.
        ("CREATE INDEX idempotency_keys_by_claimed_at ON idempotency_keys (claimed_at)",),
    ),
    (
        10,
        "when a consent lapsed by a raised min_consent_version",
        # Set once its withdrawal notices are queued (gateway.rights.lapse): a restart does
        # not look at it again. Not a withdrawal: the consent stays as it was given.
        ("ALTER TABLE consents ADD COLUMN lapsed_at {TIME}",),
    ),
    (
        11,
        "lawful-request rejections as their own state, witness rollback alarms",
        (
            # A rejection was a row of the reasons table (justifications) under the
            # request's id, and the request stayed pending. Its own row now: at most one per
            # request (the primary key), written in the transaction that locks the request
            # (gateway.store.sql_store), so that a rejection and an approval cannot both win.
            # `reason` is sealed at rest like the justification it was moved from.
            """
            CREATE TABLE lawful_request_rejections (
                request_id TEXT PRIMARY KEY REFERENCES legal_requests (id),
                reviewer_id TEXT NOT NULL,
                reason TEXT NOT NULL,
                rejected_at {TIME} NOT NULL
            )
            """,
            # The rejections of earlier releases, moved as they are (the sealed reason too).
            "INSERT INTO lawful_request_rejections (request_id, reviewer_id, reason, rejected_at) "
            "SELECT j.disclosure_id, j.reviewer_id, j.text, j.at FROM justifications j "
            "JOIN legal_requests l ON l.id = j.disclosure_id WHERE l.status = 'pending'",
            "DELETE FROM justifications "
            "WHERE disclosure_id IN (SELECT request_id FROM lawful_request_rejections)",
            # A witness's rollback alarm, kept until the witness cosigns again or a person
            # clears it (gateway.outbound.witness_runner): a restart, or another instance,
            # finds it here rather than forgetting it.
            """
            CREATE TABLE witness_alarms (
                witness TEXT PRIMARY KEY,
                witness_size {BIGINT} NOT NULL CHECK (witness_size >= 0),
                log_size {BIGINT} NOT NULL CHECK (log_size >= 0),
                reason TEXT NOT NULL,
                raised_at {TIME} NOT NULL
            )
            """,
        ),
    ),
    (
        12,
        "per-day counts of the log for the record of processing and the overview",
        # Derived from the log alone, never written on the disclosure path: the entries
        # below `log_rollup.next_index` are counted here (gateway.store.rollup); a reader
        # adds the entries appended since, and `gateway ropa --rebuild` starts again.
        (
            """
            CREATE TABLE log_rollup (
                name TEXT PRIMARY KEY,
                next_index {BIGINT} NOT NULL CHECK (next_index >= 0)
            )
            """,
            "INSERT INTO log_rollup (name, next_index) VALUES ('counts', 0)",
            # Disclosures sent, by the UTC day (grain 'day', period YYYY-MM-DD) and month
            # ('month', YYYY-MM) of their intent (ropa_sql): a year reads twelve months,
            # not 365 days; the grain first, so each reads its own range of the key.
            """
            CREATE TABLE ropa_days (
                grain TEXT NOT NULL CHECK (grain IN ('day', 'month')),
                period TEXT NOT NULL,
                partner TEXT NOT NULL,
                operation TEXT NOT NULL,
                purpose TEXT NOT NULL,
                legal_basis TEXT NOT NULL,
                disclosures {BIGINT} NOT NULL,
                first_at {TIME} NOT NULL,
                last_at {TIME} NOT NULL,
                PRIMARY KEY (grain, period, partner, operation, purpose, legal_basis)
            ){WITHOUT_ROWID}
            """,
            """
            CREATE TABLE ropa_field_days (
                grain TEXT NOT NULL CHECK (grain IN ('day', 'month')),
                period TEXT NOT NULL,
                partner TEXT NOT NULL,
                operation TEXT NOT NULL,
                purpose TEXT NOT NULL,
                legal_basis TEXT NOT NULL,
                field TEXT NOT NULL,
                disclosures {BIGINT} NOT NULL,
                PRIMARY KEY (grain, period, partner, operation, purpose, legal_basis, field)
            ){WITHOUT_ROWID}
            """,
            # Distinct consents cannot be added up: each day and month keeps its ids.
            """
            CREATE TABLE ropa_consent_days (
                grain TEXT NOT NULL CHECK (grain IN ('day', 'month')),
                period TEXT NOT NULL,
                partner TEXT NOT NULL,
                operation TEXT NOT NULL,
                purpose TEXT NOT NULL,
                legal_basis TEXT NOT NULL,
                consent_id TEXT NOT NULL,
                PRIMARY KEY (grain, period, partner, operation, purpose, legal_basis, consent_id)
            ){WITHOUT_ROWID}
            """,
            # The overview's counts (summary_sql).
            """
            CREATE TABLE summary_outcome_days (
                day TEXT NOT NULL,
                outcome TEXT NOT NULL,
                entries {BIGINT} NOT NULL,
                PRIMARY KEY (day, outcome)
            ){WITHOUT_ROWID}
            """,
            """
            CREATE TABLE summary_problem_days (
                day TEXT NOT NULL,
                problem TEXT NOT NULL,
                entries {BIGINT} NOT NULL,
                PRIMARY KEY (day, problem)
            ){WITHOUT_ROWID}
            """,
            """
            CREATE TABLE summary_partner_days (
                day TEXT NOT NULL,
                partner TEXT NOT NULL,
                entries {BIGINT} NOT NULL,
                PRIMARY KEY (day, partner)
            ){WITHOUT_ROWID}
            """,
        ),
    ),
    (
        13,
        "personal API tokens of people signed in through the OpenID provider",
        (
            # Made on the review site, used by the CLI (gateway.cli.person); only the
            # secret's SHA-256 is stored. A row is never deleted: a revoked or expired
            # token stays listed, so the person sees what existed.
            """
            CREATE TABLE personal_tokens (
                id TEXT PRIMARY KEY,
                person TEXT NOT NULL,
                roles {SET} NOT NULL,
                token_hash TEXT NOT NULL UNIQUE,
                created_at {TIME} NOT NULL,
                expires_at {TIME} NOT NULL,
                revoked_at {TIME}
            )
            """,
            "CREATE INDEX personal_tokens_by_person ON personal_tokens (person, created_at)",
        ),
    ),
    (
        14,
        "the log's search columns as a projection behind a high-water mark",
        (
            # The durable commit a disclosure waits for writes only what the Merkle tree
            # and crash recovery need: the entry's bytes and leaf hash (recovery reads the
            # projection, caught up at start before it runs). The search columns are
            # derived from those bytes after the commit (gateway.store.projection), below
            # `log_projection.projected_size`, which only grows.
            """
            CREATE TABLE log_index (
                idx {BIGINT} PRIMARY KEY CHECK (idx >= 0),
                kind TEXT NOT NULL,
                disclosure_id TEXT NOT NULL,
                subject_ref TEXT,
                partner TEXT,
                logged_at {TIME} NOT NULL,
                purpose TEXT,
                legal_basis TEXT,
                outcome TEXT
            )
            """,
            """
            CREATE TABLE log_projection (
                name TEXT PRIMARY KEY,
                projected_size {BIGINT} NOT NULL CHECK (projected_size >= 0)
            )
            """,
            # The columns of earlier releases move as they are (`log verify` checks them
            # against the bytes as before); every entry stored is projected.
            "INSERT INTO log_index (idx, kind, disclosure_id, subject_ref, partner, logged_at, "
            "purpose, legal_basis, outcome) SELECT idx, kind, disclosure_id, subject_ref, "
            "partner, logged_at, purpose, legal_basis, outcome FROM log_entries",
            "INSERT INTO log_projection (name, projected_size) "
            "SELECT 'search', COALESCE(max(idx) + 1, 0) FROM log_entries",
            # What searches use (gateway.store.search_sql, exposure_sql, ropa_sql): a
            # disclosure's entries (two or three: the kind is read from the rows), a
            # subject's, a partner's over a time window (schema 1's partner index, ordered
            # by index, made a search of one hour read every entry of the partner), the
            # outcomes (intents and acts have none: not indexed) and times. Schema 1's
            # kind index is gone: the other kinds are each a large share of the log.
            "CREATE INDEX log_index_by_disclosure ON log_index (disclosure_id)",
            "CREATE INDEX log_index_by_subject ON log_index (subject_ref, idx)",
            "CREATE INDEX log_index_by_partner ON log_index (partner, logged_at)",
            "CREATE INDEX log_index_by_outcome ON log_index (outcome, idx) "
            "WHERE outcome IS NOT NULL",
            "CREATE INDEX log_index_by_time ON log_index (logged_at)",
            # The persons' acts, a few among millions of entries: the acts page and its
            # count (the search writes `kind = 'action'` out for this index to be chosen).
            "CREATE INDEX log_index_actions ON log_index (idx) WHERE kind = 'action'",
            # SQLite cannot drop an indexed column: its indexes go first, then the table is
            # rebuilt the documented way (a new table, the rows copied, renamed), idx
            # staying the rowid. PostgreSQL drops the columns (and their indexes) in place.
            PerDialect(
                """
            CREATE TABLE log_entries_new (
                idx INTEGER PRIMARY KEY CHECK (idx >= 0),
                entry BLOB NOT NULL,
                leaf_hash BLOB CHECK (leaf_hash IS NULL OR length(leaf_hash) = 32)
            )
            """,
                "ALTER TABLE log_entries DROP COLUMN kind, DROP COLUMN disclosure_id, "
                "DROP COLUMN subject_ref, DROP COLUMN partner, DROP COLUMN logged_at, "
                "DROP COLUMN purpose, DROP COLUMN legal_basis, DROP COLUMN outcome",
            ),
            PerDialect(
                "INSERT INTO log_entries_new (idx, entry, leaf_hash) "
                "SELECT idx, entry, leaf_hash FROM log_entries ORDER BY idx",
                None,
            ),
            PerDialect("DROP TABLE log_entries", None),
            PerDialect("ALTER TABLE log_entries_new RENAME TO log_entries", None),
            PerDialect(
                "CREATE INDEX log_entries_unhashed ON log_entries (idx) WHERE leaf_hash IS NULL",
                None,
            ),
        ),
    ),
    (
        15,
        "review-site sessions ended server-side; a consent's lapse claimed by one instance",
        (
            # One row per review-site session (gateway.web.review.session), its id in the
            # signed cookie; a signed-in request reads its row by primary key. A row per
            # session rather than a per-person "not before" time: signing out ends that
            # browser's session only (a copied cookie with it), "sign out everywhere" and
            # `gateway tokens revoke --person` end them all, and a cookie without a live
            # row (made before this version, or signed with a stolen key) opens nothing.
            # Every instance sharing the store sees an end at once. A person's expired
            # rows are deleted when they next sign in.
            """
            CREATE TABLE review_sessions (
                id TEXT PRIMARY KEY,
                person TEXT NOT NULL,
                created_at {TIME} NOT NULL,
                expires_at {TIME} NOT NULL,
                ended_at {TIME}
            )
            """,
            "CREATE INDEX review_sessions_by_person ON review_sessions (person, expires_at)",
            # When an instance claimed a consent's lapse (gateway.rights.lapse): only the
            # one whose claim changed the row writes the `consent_lapsed` entry; `lapsed_at`
            # is set after the entry, so a claim whose entry a crash cut off is taken over
            # once it is stale.
            "ALTER TABLE consents ADD COLUMN lapse_claimed_at {TIME}",
        ),
    ),
    (
        16,
        "the projection keeps an intent's consent id: a withdrawal's recipients by index",
        (
            # A withdrawn consent's recipients (gateway.rights.withdrawal) are that
            # consent's intents: read through this index, not by scanning every
            # consent-based intent's JSON since the consent was given. Derived like the
            # other columns (gateway.store.projection.consent_of: an intent's consent_id
            # when it is a JSON string, U+0000 made U+FFFD) and checked by `log verify`.
            # The U+0000 is replaced in its JSON escape, before the entry is decoded (a
            # decoded U+0000 ends SQLite's text; PostgreSQL refuses the escape anywhere).
            "ALTER TABLE log_index ADD COLUMN consent_id TEXT",
            # The entries already projected get theirs from their own bytes; those above
            # the mark are projected with it.
            PerDialect(
                """
            UPDATE log_index SET consent_id = (
                SELECT json_extract(
                    replace(CAST(e.entry AS TEXT), '\\u0000', '\\ufffd'), '$.consent_id'
                )
                FROM log_entries e
                WHERE e.idx = log_index.idx AND json_valid(CAST(e.entry AS TEXT))
                    AND json_type(CAST(e.entry AS TEXT), '$.consent_id') = 'text'
            )
            WHERE kind = 'intent'
            """,
                """
            UPDATE log_index p SET consent_id = j.entry ->> 'consent_id'
            FROM (
                SELECT e.idx,
                    replace(convert_from(e.entry, 'UTF8'), '\\u0000', '\\ufffd')::jsonb AS entry
                FROM log_entries e JOIN log_index i ON i.idx = e.idx
                WHERE i.kind = 'intent'
            ) j
            WHERE p.idx = j.idx AND jsonb_typeof(j.entry -> 'consent_id') = 'string'
            """,
            ),
            "CREATE INDEX log_index_by_consent ON log_index (consent_id, idx) "
            "WHERE consent_id IS NOT NULL",
            # The projection of schema 14 and its new column have no statistics until
            # autovacuum comes by: on a store of 10,000,000 entries PostgreSQL then guessed
            # 50,000 rows a disclosure and read one in 71 ms, a subject report in 3 s.
            PerDialect(None, "ANALYZE log_index"),
        ),
    ),
)


def migrations_for(dialect: SchemaDialect) -> tuple[Migration, ...]:
    """Every schema version, its statements rendered in `dialect`."""
    return tuple(
        Migration(version, description, _rendered(dialect, statements))
        for version, description, statements in _MIGRATIONS
    )


def _rendered(dialect: SchemaDialect, statements: Iterable[str | PerDialect]) -> tuple[str, ...]:
    return tuple(s for s in (dialect.render(t) for t in statements) if s is not None)


async def apply_migrations(
    dialect: SchemaDialect,
    migrations: Sequence[Migration],
    execute: Callable[..., Awaitable[Any]],
    fetch: Callable[[str], Awaitable[Iterable[Any]]],
) -> None:
    """Apply the versions of `migrations` not applied yet, inside the caller's transaction.

    `execute(sql, *params)` runs a statement and `fetch(sql)` returns its rows, both on the
    one connection the caller holds (and has locked against other migrators).
    """
    await execute(dialect.schema_version_table)
    applied = {int(r[0]) for r in await fetch("SELECT version FROM schema_version")}
    for migration in migrations:
        if migration.version in applied:
            continue
        for statement in migration.statements:
            await execute(statement)
        await execute(
            dialect.record_version,
            migration.version,
            migration.description,
            *dialect.applied_at(),
        )
