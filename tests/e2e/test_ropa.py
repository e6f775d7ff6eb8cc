"""The live record of processing over the demo's traffic (issue 19): `GET /v1/ropa` (JSON
and CSV), `gateway ropa`, and `gateway partners tighten` turning the drift row into a
patch that `partners diff` reads as exactly those removals — on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from support.cli import run_cli

from gateway.cli.demo import consents, samples

POLICE = ("vientiane-police", "lawful_disclosure", "safety_security", "vital_interest")
ADREACH = ("adreach", "audience_upload", "marketing", "consent")
NEVER_SENT_TO_POLICE = ["ip_address", "usage_history", "visit_time"]


async def replay_demo(client: Any, auth: Any) -> None:
    """The demo's consents, withdrawal and disclosures, in its order (gateway.cli.demo)."""
    ids = []
    for consent in consents():
        r = await client.post("/v1/consents", json=consent, headers=auth("customer-app"))
        assert r.status == 201, await r.text()
        ids.append((await r.json())["id"])
    for _title, caller, body in samples():
        if not caller:
            r = await client.post(f"/v1/consents/{ids[1]}/withdraw", headers=auth("customer-app"))
            assert r.status == 200, await r.text()
            continue
        await client.post("/v1/disclosures", json=body, headers=auth(caller))


def row(rows: list[dict[str, Any]], key: tuple[str, str, str, str]) -> dict[str, Any]:
    (found,) = [
        r for r in rows if (r["partner"], r["operation"], r["purpose"], r["legal_basis"]) == key
    ]
    return found


async def test_ropa_api_and_cli_over_the_demo_traffic(
    live: Any, auth: Any, project: Path, tmp_config: Any, tmp_path: Path
) -> None:
    await replay_demo(live, auth)

    r = await live.get("/v1/ropa", headers=auth("reviewer-alice"))
    assert r.status == 200, await r.text()
    rows = (await r.json())["rows"]
    police = row(rows, POLICE)
    assert police["disclosures"] == 1
    assert police["category"] == "government_authority" and police["jurisdiction"] == "LA"
    assert police["retention_days"] == 1825
    assert set(police["disclosed_fields"]) == {"name", "phone", "date_of_birth", "uuid"}
    assert set(police["disclosed_fields"].values()) == {1}
    assert police["never_sent"] == NEVER_SENT_TO_POLICE
    assert police["drift"] == ["fields_never_sent"]
    assert police["first_disclosure"] and police["last_disclosure"]
    # Sent before the withdrawal; the only consent behind it is withdrawn now.
    adreach = row(rows, ADREACH)
    assert adreach["disclosures"] == 1 and adreach["consents"] == 1
    assert adreach["consents_withdrawn"] == 1
    assert "consents_mostly_withdrawn" in adreach["drift"]
    # Refused disclosures were never received: the operation is unused.
    health = row(
        rows, ("lanexang-insurance", "health_underwriting", "service_provision", "consent")
    )
    assert health["disclosures"] == 0 and health["drift"] == ["operation_never_used"]
    # The demo's six ALLOWED, and the withdrawal's notice to adreach (a disclosure too).
    assert sum(r["disclosures"] for r in rows) == 7
    notice = row(rows, ("adreach", "erasure", "legal", "legal_obligation"))
    assert notice["disclosures"] == 1 and notice["disclosed_fields"] == {}

    r = await live.get("/v1/ropa?format=csv", headers=auth("reviewer-bob"))
    assert r.status == 200 and r.content_type == "text/csv"
    table = list(csv.DictReader(io.StringIO(await r.text())))
    (line,) = [
        t
        for t in table
        if (t["partner"], t["operation"], t["legal_basis"]) == (POLICE[0], POLICE[1], POLICE[3])
        and t["purpose"] == POLICE[2]
    ]
    assert line["never_sent"] == " ".join(NEVER_SENT_TO_POLICE)
    assert line["drift"] == "fields_never_sent" and line["disclosures"] == "1"

    # An empty window: every row there, none sent.
    r = await live.get("/v1/ropa?since=2020-01-01&until=2020-02-01", headers=auth("reviewer-bob"))
    assert sum(x["disclosures"] for x in (await r.json())["rows"]) == 0

    # The CLI reads the same store.
    root = tmp_path / "cli"
    root.mkdir()
    (root / "keys").symlink_to(project / "keys")
    shutil.copytree(project / "partners", root / "partners")
    text = (project / "config.toml").read_text()
    text = text.replace('url = "sqlite:///var/gateway.db"', f'url = "{tmp_config.storage_url}"')
    (root / "config.toml").write_text(text)

    async def cli(*args: str) -> tuple[int, str, str]:
        return await asyncio.to_thread(run_cli, root, *args)

    code, out, err = await cli("ropa", "--format", "json")
    assert code == 0, err
    assert row(json.loads(out)["rows"], POLICE)["never_sent"] == NEVER_SENT_TO_POLICE
    code, out, err = await cli("ropa")
    assert code == 0 and "DRIFT:       fields_never_sent" in out
    assert "never sent:  ip_address, usage_history, visit_time" in out
    code, out, err = await cli("ropa", "--since", "31/12/2026")
    assert code != 0 and "YYYY-MM-DD" in err
    # The per-day counts it read match the entries; recounted from the verified log.
    code, out, err = await cli("ropa", "--verify")
    assert code == 0 and out.startswith("ok: the per-day counts match the log's first "), err
    code, out, err = await cli("ropa", "--rebuild")
    assert code == 0 and out.startswith("ok: counted the log's "), err
    code, out, err = await cli("ropa", "--format", "json")
    assert row(json.loads(out)["rows"], POLICE)["never_sent"] == NEVER_SENT_TO_POLICE

    code, patch, err = await cli("partners", "tighten", "vientiane-police", "--since", "2020-01-01")
    assert code == 0, err
    assert patch.startswith("--- a/partners/vientiane-police.toml\n")
    shutil.copytree(root / "partners", root / "before")
    applied = subprocess.run(
        ["patch", "-p1"], input=patch, cwd=root, capture_output=True, text=True, check=False
    )
    assert applied.returncode == 0, applied.stdout + applied.stderr
    code, shown, err = await cli("partners", "diff", str(root / "before"), str(root / "partners"))
    assert code == 0, err  # nothing widens
    changes = [line.strip() for line in shown.splitlines() if line.strip().startswith(("-", "+"))]
    assert changes == [f"- field {name} removed (keep)  [narrows]" for name in NEVER_SENT_TO_POLICE]
    assert "0 widen, 3 narrow, 0 other change(s)" in shown

    # Tightened, nothing more to remove.
    code, patch, err = await cli("partners", "tighten", "vientiane-police", "--since", "2020-01-01")
    assert code == 0 and patch == "" and "nothing to tighten" in err


async def test_ropa_needs_a_reviewer_and_good_dates(gateway: Any, auth: Any) -> None:
    r = await gateway.get("/v1/ropa", headers=auth("sales-service"))
    assert r.status == 403
    r = await gateway.get("/v1/ropa?since=yesterday", headers=auth("reviewer-alice"))
    assert r.status == 400
    problem = await r.json(content_type=None)
    assert r.content_type == "application/problem+json"
    assert "YYYY-MM-DD" in problem["detail"] and "since" in problem["detail"]
    r = await gateway.get(
        "/v1/ropa?since=2026-02-01&until=2026-01-01", headers=auth("reviewer-alice")
    )
    assert r.status == 400 and "before" in (await r.json(content_type=None))["detail"]
    r = await gateway.get("/v1/ropa?format=xml", headers=auth("reviewer-alice"))
    assert r.status == 400
    r = await gateway.get("/v1/ropa", headers=auth("reviewer-alice"))
    body = await r.json()
    assert r.status == 200 and body["rows"] and all(x["disclosures"] == 0 for x in body["rows"])
