"""The `[operations.<name>]` tables of a partner file → `Operation`s: what may be sent to
the partner — its fields with their transforms, for which purposes and on which legal
bases. The part of a partner file where the privacy policy is checked at load time (a
field never disclosed, special categories only with consent, business transfers only to
a counterparty), so a file the policy would refuse never loads.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any, Protocol

from gateway import vocabulary as v
from gateway.partners.model import METHODS, OPERATION_KEYS, PLACEHOLDER, Operation


class FileChecks(Protocol):
    """What reading the operations needs of the reader of the whole file."""

    def fail(self, message: str, *key: str | int) -> None:
        """Record a problem at the line of `key`."""

    def unknown_keys(
        self, table: Mapping[str, Any], known: Iterable[str], at: tuple[str, ...]
    ) -> None:
        """Record a problem for each key of `table` not in `known`."""


def read_operations(table: object, category: str, file: FileChecks) -> dict[str, Operation]:
    """The operations of a partner of `category`; each problem goes to `file.fail`."""
    return _OperationsReader(file).read(table, category)


class _OperationsReader:
    def __init__(self, file: FileChecks) -> None:
        self.file = file

    def read(self, table: object, category: str) -> dict[str, Operation]:
        if not isinstance(table, dict) or not table:
            self.file.fail("no operations: add at least one [operations.<name>] table")
            return {}
        operations: dict[str, Operation] = {}
        for name, op in table.items():
            at = ("operations", name)
            if not re.match(r"^[a-z][a-z0-9_]*$", name):
                self.file.fail(f"operation name {name!r}: use lowercase letters, digits, '_'", *at)
            if not isinstance(op, dict):
                self.file.fail(f"operations.{name} must be a table", *at)
                continue
            self.file.unknown_keys(op, OPERATION_KEYS, at)
            method = str(op.get("method", "POST")).upper()
            if method not in METHODS:
                self.file.fail(
                    f"method {op.get('method')!r} is not one of {', '.join(METHODS)}", *at, "method"
                )
            purposes = self._subset(op, "purposes", v.PURPOSES, at)
            bases = self._subset(op, "legal_bases", v.LEGAL_BASES, at)
            fields = self._fields(op.get("fields"), bases, at)
            path = self._op_path(op.get("path"), fields, at)
            if (
                "business_transfer" in bases
                and category
                and (category != "business_transfer_counterparty")
            ):
                # policy: III.4
                self.file.fail(
                    "legal basis 'business_transfer' is only for partners of category "
                    f"'business_transfer_counterparty', not {category!r}",
                    *at,
                    "legal_bases",
                )
            operations[name] = Operation(
                name, method, path, purposes, bases, MappingProxyType(fields)
            )
        return operations

    def _subset(
        self, op: Mapping[str, Any], key: str, choices: tuple[str, ...], at: tuple[str, ...]
    ) -> frozenset[str]:
        values = op.get(key)
        if not isinstance(values, list) or not values:
            self.file.fail(
                f"'{key}' must be a non-empty list; choose from: {', '.join(choices)}", *at, key
            )
            return frozenset()
        bad = [x for x in values if x not in choices]
        if bad:
            singular = {"purposes": "purpose", "legal_bases": "legal basis"}[key]
            self.file.fail(
                f"unknown {singular} {bad[0]!r}; valid: {', '.join(choices)}",
                *at,
                key,
            )
        return frozenset(x for x in values if x in choices)

    def _fields(self, table: object, bases: frozenset[str], at: tuple[str, ...]) -> dict[str, str]:
        if not isinstance(table, dict) or not table:
            self.file.fail(
                "'fields' must be a non-empty table of field = \"transform\"", *at, "fields"
            )
            return {}
        fields: dict[str, str] = {}
        for name, transform in table.items():
            where = (*at, "fields", name)
            if name in v.NEVER_DISCLOSED:
                # policy: I.1 — password never leaves, under any basis.
                self.file.fail(f"field '{name}' is never disclosable; remove it", *where)
                continue
            if name not in v.FIELDS:
                self.file.fail(
                    f"unknown field {name!r}; valid fields: "
                    f"{', '.join(sorted(v.FIELDS - v.NEVER_DISCLOSED))}",
                    *where,
                )
                continue
            if transform not in v.TRANSFORMS:
                self.file.fail(
                    f"unknown transform {transform!r} for '{name}'; valid: "
                    f"{', '.join(v.TRANSFORMS)}",
                    *where,
                )
                continue
            only_for = v.TRANSFORMS_ONLY_FOR.get(transform)
            if only_for is not None and name not in only_for:
                self.file.fail(
                    f"transform '{transform}' applies only to {', '.join(sorted(only_for))},"
                    f" not '{name}'",
                    *where,
                )
                continue
            if name == "payment_records" and transform not in v.CONTAINER_TRANSFORMS:
                self.file.fail(
                    'payment_records is a container: use "keep" or "drop" and list '
                    "its keys (amount, currency, card_token, transaction_id) with their "
                    "own transforms",
                    *where,
                )
                continue
            if name in v.SPECIAL_FIELDS and bases and "consent" not in bases:
                # policy: I.1 sensitive information only with consent.
                self.file.fail(
                    f"special-category field '{name}' needs 'consent' among legal_bases "
                    f"(it passes only with explicit consent); bases are "
                    f"{sorted(bases)}",
                    *where,
                )
                continue
            fields[name] = transform
        return fields

    def _op_path(self, value: object, fields: Mapping[str, str], at: tuple[str, ...]) -> str:
        if not isinstance(value, str) or not value.startswith("/"):
            self.file.fail("'path' must start with '/' (it is joined to base_url)", *at, "path")
            return "/"
        if "?" in value or "#" in value or "//" in value or ".." in value:
            self.file.fail("'path' must not hold '?', '#', '//' or '..'", *at, "path")
        for placeholder in PLACEHOLDER.findall(value):
            if fields.get(placeholder, "drop") == "drop":
                self.file.fail(
                    f"placeholder {{{placeholder}}} must be a field this operation sends "
                    f"(listed in fields and not dropped)",
                    *at,
                    "path",
                )
        return value
