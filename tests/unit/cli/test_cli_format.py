"""One `--format text|json|csv` on every command that prints records (cli_support's
RecordWriter); each default output is the one of before, old flags stay as hidden aliases."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from support.cli import project_copy, run_cli

from gateway.cli.completion import parsers
from gateway.cli.main import build_parser
from gateway.cli.support import OUTPUT_FORMATS, RecordWriter, columns

RECORDS = [
    {"id": "a", "count": 2, "tags": ["x", "y"], "note": None},
    {"id": "b", "count": 10, "tags": [], "note": "=HYPERLINK(1)"},
]


def render(fmt: str, **options) -> str:
    out = io.StringIO()
    RecordWriter(fmt, columns("id", "count", "note"), out=out, **options).write_all(RECORDS).close()
    return out.getvalue()


def test_the_writer_renders_three_formats():
    assert json.loads(render("json")) == RECORDS
    assert [json.loads(line) for line in render("json", json_lines=True).splitlines()] == RECORDS
    rows = list(csv.reader(io.StringIO(render("csv"))))
    assert rows == [["id", "count", "note"], ["a", "2", ""], ["b", "10", "'=HYPERLINK(1)"]]
    assert render("text").splitlines() == [
        "ID  COUNT  NOTE",
        "a   2      -",
        "b   10     =HYPERLINK(1)",
    ]
    assert render("text", text_line=lambda r: f"{r['id']}:{r['count']}", text_header="#") == (
        "#\na:2\nb:10\n"
    )


def test_every_record_command_takes_format():
    with_format = {
        p.prog.removeprefix("gateway ")
        for p in parsers(build_parser())
        for action in p._actions
        if "--format" in action.option_strings and tuple(action.choices or ()) == OUTPUT_FORMATS
    }
    assert with_format >= {
        "log search",
        "log export",
        "partners list",
        "partners suspensions",
        "legal-request list",
        "report subject",
        "reviewers list",
    }


@pytest.fixture
def root(project: Path, tmp_path: Path) -> Path:
    return project_copy(project, tmp_path)


def run(root: Path, *args: str) -> tuple[int, str]:
    code, out, _ = run_cli(root, *args)
    return code, out


def test_partners_list_in_each_format_and_the_old_flag(root: Path):
    code, text = run(root, "partners", "list")
    assert code == 0 and text.startswith("ID ") and "DAYS LEFT" in text.splitlines()[0]
    code, old = run(root, "partners", "list", "--json")
    code, new = run(root, "partners", "list", "--format", "json")
    assert code == 0 and old == new and json.loads(new)[0]["id"] == "adreach"
    code, table = run(root, "partners", "list", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(table)))
    assert code == 0 and rows[0]["id"] == "adreach"
    assert rows[0]["operations"] == "audience_upload erasure"
    listing = next(p for p in parsers(build_parser()) if p.prog == "gateway partners list")
    assert "--format" in listing.format_help() and "--json" not in listing.format_help()


def test_suspensions_default_stays_json_and_text_and_csv_exist(
    root: Path, monkeypatch: pytest.MonkeyPatch
):
    from support.credentials import token_of

    monkeypatch.setenv("GATEWAY_TOKEN", token_of(root, "reviewer-bob"))
    suspend = ("partners", "suspend", "veriid", "--reason", "INC-9", "--as", "reviewer-bob")
    assert run(root, *suspend)[0] == 0
    code, out = run(root, "partners", "suspensions")
    assert code == 0 and json.loads(out)["suspended"][0]["partner"] == "veriid"
    code, out = run(root, "partners", "suspensions", "--format", "text")
    assert code == 0 and out.splitlines()[0].split() == ["PARTNER", "REASON", "BY", "AT"]
    code, out = run(root, "partners", "suspensions", "--history", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and [(r["partner"], r["action"]) for r in rows] == [("veriid", "suspend")]


def test_legal_requests_and_reviewers_in_csv(root: Path):
    code, out = run(root, "legal-request", "list")
    assert code == 0 and out == "no lawful requests\n"
    code, out = run(root, "legal-request", "list", "--format", "csv")
    assert code == 0 and out.startswith("id,status,authority")
    code, out = run(root, "reviewers", "list", "--format", "csv")
    assert code == 0 and out.splitlines()[0] == "id,name,password_scheme"


def test_log_export_keeps_jsonl_as_a_name_of_json(root: Path):
    assert run(root, "log", "export", "--format", "jsonl")[0] == 0
    assert run(root, "log", "export", "--format", "json")[0] == 0
    code, out = run(root, "log", "search", "--format", "csv")
    assert code == 0 and out.startswith("index,time,outcome,partner")
