"""Breach scope (issue #19 item 2), on SQLite and on PostgreSQL: disclosures to two partners
across a window, `GET /v1/partners/{id}/exposure` counts exactly those delivered (or maybe
delivered) to one partner inside it, and `gateway subjects resolve` finds exactly the
customers of a test list that were disclosed in it — not the others, not those disclosed
to the other partner or outside the window. Each read is an action entry holding counts,
never a customer id."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.canonical import timestamp
from gateway.cli.main import main
from gateway.config.model import Config
from gateway.crypto.subject_keys import LogKeys
from gateway.log.entries import outcome_entry
from gateway.web.keys import LOG

Auth = Callable[[str], dict[str, str]]
PARTNER = "mekong-collections"
OTHER = "lanexang-insurance"
SINCE, UNTIL = "2026-03-01", "2026-04-30"

# (customer, partner, time, fields, outcome, maybe_received)
TRAFFIC: list[tuple[str, str, str, tuple[str, ...], str, bool | None]] = [
    ("cust-1", PARTNER, "2026-03-05T10:00:00Z", ("name", "phone"), "sent", None),
    ("cust-2", PARTNER, "2026-04-10T10:00:00Z", ("phone", "health_status"), "sent", None),
    ("cust-1", PARTNER, "2026-04-12T10:00:00Z", ("name",), "sent", None),
    ("cust-3", PARTNER, "2026-03-20T10:00:00Z", ("email",), "failed", True),  # timed out
    ("cust-4", PARTNER, "2026-03-21T10:00:00Z", ("email",), "failed", False),  # never reached
    ("cust-5", PARTNER, "2026-05-02T10:00:00Z", ("name",), "sent", None),  # after the window
    ("cust-5", PARTNER, "2026-02-27T10:00:00Z", ("name",), "sent", None),  # before it
    ("cust-6", OTHER, "2026-03-06T10:00:00Z", ("name",), "sent", None),  # another partner
]
# A header, a blank line and a bad line (7) among the ids; cust-7 was never disclosed.
CUSTOMERS = (
    "customer_id,segment\ncust-1,a\ncust-2,b\n\ncust-3,c\ncust-4,d\nbad id!,x\n"
    "cust-5,e\ncust-6,f\ncust-7,g\n"
)


async def record_traffic(client: TestClient, keys: LogKeys) -> None:
    log = client.server.app[LOG]
    for n, (customer, partner, time, fields, outcome, maybe) in enumerate(TRAFFIC):
        at = datetime.fromisoformat(time)
        disclosure_id = f"d-exposure-{n}"
        await log.append(
            {
                "v": 1,
                "kind": "intent",
                "time": timestamp(at),
                "disclosure_id": disclosure_id,
                "caller": "crm-service",
                "partner": partner,
                "operation": "collect",
                "purpose": "service_provision",
                "legal_basis": "contract",
                "subject_ref": keys.subject_ref(customer, at),
                "fields": dict.fromkeys(fields, "plain"),
            }
        )
        await log.append(
            outcome_entry(
                disclosure_id=disclosure_id,
                outcome=outcome,
                at=at,
                partner=partner,
                maybe_received=maybe,
            )
        )


def run(config_path: Path, *args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(["--config", str(config_path), *args])
    return code, out.getvalue(), err.getvalue()


async def test_exposure_and_resolve(
    gateway: TestClient,
    auth: Auth,
    tmp_config: Config,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    keys = LogKeys.load(tmp_config.keys_dir)
    await record_traffic(gateway, keys)
    ref = {(c, t[:7]): keys.subject_ref(c, datetime.fromisoformat(t)) for c, _, t, *_ in TRAFFIC}

    r = await gateway.get(
        f"/v1/partners/{PARTNER}/exposure",
        params={"since": SINCE, "until": UNTIL, "limit": "2"},
        headers=auth("reviewer-alice"),
    )
    assert r.status == 200, await r.text()
    body: dict[str, Any] = await r.json()
    assert (body["since"], body["until"]) == ("2026-03-01T00:00:00Z", "2026-05-01T00:00:00Z")
    # cust-1 (March and April: two references), cust-2, and cust-3 maybe received.
    assert (body["disclosures"], body["maybe_received"], body["subjects"]) == (4, 1, 4)
    assert body["special_category"] is True
    assert body["fields"] == {
        "email": {"disclosures": 1, "maybe_received": 1, "subjects": 1, "category": "contact",
                  "special_category": False},
        "health_status": {"disclosures": 1, "maybe_received": 0, "subjects": 1,
                          "category": "special", "special_category": True},
        "name": {"disclosures": 2, "maybe_received": 0, "subjects": 2, "category": "identity",
                 "special_category": False},
        "phone": {"disclosures": 2, "maybe_received": 0, "subjects": 2, "category": "contact",
                  "special_category": False},
    }  # fmt: skip
    assert body["categories"]["contact"] == {
        "disclosures": 3, "maybe_received": 1, "subjects": 3, "special_category": False
    }  # fmt: skip
    assert body["categories"]["special"]["special_category"] is True
    assert set(body["categories"]) == {"contact", "identity", "special"}
    # Paged by cursor: two, then the other two, then none.
    refs = [x["subject_ref"] for x in body["subject_refs"]]
    assert len(refs) == 2 and body["next_cursor"] == refs[-1]
    r = await gateway.get(
        f"/v1/partners/{PARTNER}/exposure",
        params={"since": SINCE, "until": UNTIL, "limit": "2", "cursor": body["next_cursor"]},
        headers=auth("reviewer-alice"),
    )
    page = await r.json()
    refs += [x["subject_ref"] for x in page["subject_refs"]]
    assert page["next_cursor"] is None
    expected = {ref["cust-1", "2026-03"], ref["cust-1", "2026-04"], ref["cust-2", "2026-04"]}
    assert set(refs) == expected | {ref["cust-3", "2026-03"]}
    maybe = [x for x in body["subject_refs"] + page["subject_refs"] if not x["sent"]]
    assert [x["subject_ref"] for x in maybe] == [ref["cust-3", "2026-03"]]

    # The read is an action entry: partner, window and counts, no reference.
    entries = [e for _, e in await exposure_actions(gateway)]
    assert entries[-1]["actor"] == "reviewer-alice"
    assert entries[-1]["target"] == f"partner:{PARTNER}"
    assert entries[-1]["counts"] == {"disclosures": 4, "subjects": 4}
    assert entries[-1]["window"] == "2026-03-01T00:00:00Z/2026-05-01T00:00:00Z"

    # The CLI, on the same store: the customers of the list disclosed in the window.
    monkeypatch.setenv("GATEWAY_STORAGE_URL", tmp_config.storage_url)
    customers = tmp_path / "customers.csv"
    customers.write_text(CUSTOMERS)
    code, out, err = await asyncio.to_thread(
        run,
        tmp_config.root / "config.toml",
        "subjects", "resolve", str(customers), "--partner", PARTNER,
        "--since", SINCE, "--until", UNTIL,
    )  # fmt: skip
    assert code == 0, err
    assert sorted(out.splitlines()) == sorted(
        [
            f"cust-1 {ref['cust-1', '2026-03']}",
            f"cust-1 {ref['cust-1', '2026-04']}",
            f"cust-2 {ref['cust-2', '2026-04']}",
            f"cust-3 {ref['cust-3', '2026-03']}",
        ]
    )
    assert f"{customers}:7: not a customer id" in err and "bad id!" not in err
    assert "3 of 7 customer(s) found" in err
    resolved = [e for _, e in await exposure_actions(gateway) if e["action"] == "resolve_subjects"]
    assert len(resolved) == 1 and resolved[0]["credential"] == "host-shell"
    assert resolved[0]["counts"] == {
        "ids_read": 7, "found": 3, "references": 4, "forgotten_months": 0, "bad_lines": 1
    }  # fmt: skip
    raw = json.dumps(resolved[0])
    assert "cust-" not in raw and ref["cust-1", "2026-03"] not in raw

    # The CLI exposure agrees with the API.
    code, out, err = await asyncio.to_thread(
        run,
        tmp_config.root / "config.toml",
        "exposure", PARTNER, "--since", SINCE, "--until", UNTIL, "--format", "json",
    )  # fmt: skip
    assert code == 0, err
    cli_body = json.loads(out)
    assert (cli_body["disclosures"], cli_body["subjects"]) == (4, 4)
    assert cli_body["fields"] == body["fields"] and len(cli_body["subject_refs"]) == 4


async def exposure_actions(client: TestClient) -> list[tuple[int, dict[str, Any]]]:
    from gateway.log.columns import checked_search
    from gateway.store.records import LogQuery
    from gateway.web.keys import STORE

    found = await checked_search(client.server.app[STORE], LogQuery(kind="action", limit=1000))
    return [
        (e.index, e.data)
        for e in found
        if e.data.get("action") in ("read_exposure", "resolve_subjects")
    ]


async def test_unknown_partner_and_bad_dates(gateway: TestClient, auth: Auth) -> None:
    r = await gateway.get(
        "/v1/partners/no-such-partner/exposure",
        params={"since": SINCE, "until": UNTIL},
        headers=auth("reviewer-alice"),
    )
    assert r.status == 404 and r.content_type == "application/problem+json"
    r = await gateway.get(
        f"/v1/partners/{PARTNER}/exposure",
        params={"since": "03/01/2026", "until": UNTIL},
        headers=auth("reviewer-alice"),
    )
    assert r.status == 400 and r.content_type == "application/problem+json"
    assert "YYYY-MM-DD" in (await r.json())["detail"]
    r = await gateway.get(
        f"/v1/partners/{PARTNER}/exposure",
        params={"since": SINCE, "until": UNTIL},
        headers=auth("payments-service"),
    )
    assert r.status == 403


async def test_cli_refuses_a_partner_it_does_not_know(
    gateway: TestClient, tmp_config: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A mistyped partner in a breach must not read as "none of our customers exposed".
    await record_traffic(gateway, LogKeys.load(tmp_config.keys_dir))
    monkeypatch.setenv("GATEWAY_STORAGE_URL", tmp_config.storage_url)
    customers = tmp_path / "customers.csv"
    customers.write_text(CUSTOMERS)
    config_path = tmp_config.root / "config.toml"
    window = ("--since", SINCE, "--until", UNTIL)
    for args in (
        ("exposure", "mekong-colections", *window),
        ("subjects", "resolve", str(customers), "--partner", "mekong-colections", *window),
    ):
        code, out, err = await asyncio.to_thread(run, config_path, *args)
        assert (code, out) == (2, ""), err
        assert "error: not_found: no partner 'mekong-colections'" in err
    assert await exposure_actions(gateway) == []  # refused before anything was read
    # A partner known to the files but quiet in the window is an answer, not a refusal.
    code, out, err = await asyncio.to_thread(
        run, config_path, "exposure", PARTNER, "--since", "2025-01-01", "--until", "2025-01-31"
    )
    assert code == 0 and "0 disclosure(s)" in out, err
