"""gateway.observe.app_log: JSON lines, the request context, and what keeps personal values out."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
from collections.abc import Callable, Iterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from support.app_logs import captured_log_lines

from gateway.errors import GatewayError, InternalServerError
from gateway.observe import app_log as logs

CANARY = "CANARY-6f1c2a7e"


@pytest.fixture
def records() -> Iterator[Callable[[], list[dict]]]:
    """Every record of every logger, as the JSON lines `gateway serve` writes."""
    with captured_log_lines() as lines:
        yield lines


def test_json_line_holds_only_whitelisted_facts(records):
    logging.getLogger("gateway.disclosure.flow").warning(
        "outcome entry not written",
        extra={
            "disclosure_id": "d-1",
            "partner": "adreach",
            "data": {"name": CANARY},
            "attempts": 3,
        },
    )
    [line] = records()
    assert line["message"] == "outcome entry not written"
    assert (line["level"], line["logger"]) == ("WARNING", "gateway.disclosure.flow")
    assert line["disclosure_id"] == "d-1" and line["partner"] == "adreach"
    assert line["attempts"] == 3 and "data" not in line
    assert line["time"].endswith("Z") and isinstance(line["pid"], int)
    assert CANARY not in json.dumps(line)


def test_tracebacks_withhold_exception_messages(records):
    try:
        try:
            {}[CANARY]
        except KeyError as exc:
            raise InternalServerError(f"wrapped {CANARY}") from exc
    except GatewayError:
        logging.getLogger("gateway.web").exception("unhandled error on POST disclosures")
    [line] = records()
    trace = line["exception"]
    assert CANARY not in trace
    assert "KeyError" in trace and "gateway.errors.InternalServerError: internal_error" in trace
    assert "test_tracebacks_withhold_exception_messages" in trace and "which led to:" in trace


def test_library_records_that_quote_data_are_dropped_or_cut(records):
    logging.getLogger("aiohttp.access").info('127.0.0.1 "GET /v1/subjects/%s/consents"', CANARY)
    logging.getLogger("aiosqlite").debug("executing %s", ("INSERT …", (CANARY,)))
    logging.getLogger("asyncio").error(
        "Task exception was never retrieved\nfuture: <Task exception=KeyError(%r)>", CANARY
    )
    logging.getLogger("gateway.disclosure.flow").debug("our own debug stays")
    lines = records()
    assert [line["message"] for line in lines] == [
        "Task exception was never retrieved",
        "our own debug stays",
    ]
    assert CANARY not in json.dumps(lines)


def test_bind_and_text_format():
    with pytest.raises(ValueError):
        logs.bind(subject="s-1")
    logs.bind(caller="sales-service")  # outside a request: nothing to attach to, no error
    record = logging.LogRecord("gateway.x", logging.INFO, __file__, 1, "sent %s", ("ok",), None)
    record.partner = "adreach"
    text = logs.TextFormatter().format(record)
    assert text.endswith("INFO    gateway.x: sent ok  [partner=adreach]")


def test_setup_logging_is_idempotent_and_checks_the_format():
    root = logging.getLogger()
    before, level = list(root.handlers), root.level
    stream = io.StringIO()
    try:
        logs.setup_logging("text", stream=stream)
        logs.setup_logging("json", stream=stream)
        ours = [h for h in root.handlers if h.get_name() == "gateway"]
        assert len(ours) == 1 and isinstance(ours[0].formatter, logs.JsonFormatter)
        logging.getLogger("gateway.test").info("hello")
        assert json.loads(stream.getvalue().splitlines()[-1])["message"] == "hello"
        with pytest.raises(ValueError):
            logs.setup_logging("xml")
    finally:
        for handler in [h for h in root.handlers if h not in before]:
            root.removeHandler(handler)
        root.setLevel(level)
        logging.captureWarnings(False)
        logging.raiseExceptions = True


# -- the middleware, on a real loopback server --------------------------------------------


def small_app() -> web.Application:
    async def consents(request: web.Request) -> web.Response:
        logs.bind(caller="customer-app")
        logging.getLogger("gateway.test").info("inside the handler")
        return web.json_response({"consents": []})

    async def refuse(request: web.Request) -> web.Response:
        body = json.dumps(
            {
                "type": "https://gateway.invalid/problems/consent_required",
                "status": 403,
                "detail": f"for {CANARY}",
            }
        )
        return web.Response(
            status=403,
            body=body.encode(),
            content_type="application/problem+json",
            headers={"Disclosure-Id": "d-42"},
        )

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application(middlewares=[logs.request_context])
    app.router.add_get("/v1/subjects/{subject}/consents", consents)
    app.router.add_post("/v1/disclosures", refuse)
    app.router.add_get("/healthz", healthz)
    return app


async def test_request_ids_in_and_out(records):
    async with TestClient(TestServer(small_app())) as client:
        given = await client.get(
            f"/v1/subjects/{CANARY}/consents", headers={"X-Request-Id": "trace-0001"}
        )
        made = await client.get(f"/v1/subjects/{CANARY}/consents")
        odd = await client.get(
            f"/v1/subjects/{CANARY}/consents", headers={"X-Request-Id": f"name {CANARY}"}
        )
        refused = await client.post("/v1/disclosures", json={"data": {"name": CANARY}})
        await client.get("/healthz")
    assert given.headers["X-Request-Id"] == "trace-0001"
    generated = made.headers["X-Request-Id"]
    assert len(generated) == 32 and odd.headers["X-Request-Id"] not in (generated, "trace-0001")
    assert CANARY not in odd.headers["X-Request-Id"]
    lines = records()
    inside = [line for line in lines if line["message"] == "inside the handler"]
    assert [line["request_id"] for line in inside] == [
        "trace-0001",
        generated,
        odd.headers["X-Request-Id"],
    ]
    requests = [line for line in lines if line["logger"] == "gateway.request"]
    assert [(line["level"], line["message"]) for line in requests] == [
        ("INFO", "GET /v1/subjects/{subject}/consents 200")
    ] * 3 + [("INFO", "POST /v1/disclosures 403 consent_required"), ("DEBUG", "GET /healthz 200")]
    assert requests[0]["caller"] == "customer-app" and requests[0]["status"] == 200
    refusal = requests[3]
    assert refusal["problem"] == "consent_required" and refusal["disclosure_id"] == "d-42"
    assert refusal["request_id"] == refused.headers["X-Request-Id"]
    assert "problem" not in requests[4] and "caller" not in requests[4]
    assert CANARY not in json.dumps(lines)


async def test_malformed_requests_log_no_raw_bytes(records):
    runner = web.AppRunner(small_app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    raw_requests = [
        f"GET /v1/subjects/{CANARY}\x01/consents HTTP/1.1\r\nHost: x\r\n\r\n",
        f"GET /v1/subjects/x/consents HTTP/1.1\r\nHost: x\r\nX-Bad\x01: {CANARY}\r\n\r\n",
        f"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: {CANARY}\r\n\r\n",
        f"{CANARY} / HTTP/1.1\r\n\r\n",
    ]
    try:
        for raw in raw_requests:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(raw.encode("latin-1"))
            await writer.drain()
            assert (await reader.read(100)).startswith(b"HTTP/1.0 400")
            writer.close()
            await writer.wait_closed()
    finally:
        await runner.cleanup()
    lines = records()
    rejected = [line for line in lines if line["message"].startswith("rejected a malformed")]
    assert len(rejected) == len(raw_requests)
    assert {line["level"] for line in rejected} <= {"WARNING", "DEBUG"}
    assert all("exception" not in line for line in rejected)
    assert "127.0.0.1" not in json.dumps(rejected)
    assert CANARY not in json.dumps(lines)


def test_cli_commands_write_their_log_lines_as_json(project, tmp_path, capsys, monkeypatch):
    """`gateway partners suspend` logs who suspended whom: a JSON line on stderr, like
    serve's, while the command's own output stays on stdout."""
    import shutil

    from gateway.cli.main import main

    root = tmp_path / "project"
    shutil.copytree(project, root, ignore=shutil.ignore_patterns("var"))
    from support.credentials import token_of

    monkeypatch.setenv("GATEWAY_TOKEN", token_of(root, "reviewer-bob"))
    argv = ["--config", str(root / "config.toml"), "partners", "suspend", "veriid"]
    assert main([*argv, "--reason", "INC-7", "--as", "reviewer-bob"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["partner"] == "veriid"
    [line] = [json.loads(text) for text in captured.err.splitlines()]
    assert line["logger"] == "gateway.lifecycle" and line["level"] == "WARNING"
    assert line["message"].startswith("partner veriid suspended by reviewer-bob")
    assert "INC-7" not in captured.err  # the free-text reason stays in the store


def test_the_handler_follows_a_redirected_stderr(capsys):
    handler = logs.setup_logging("json", level=logging.WARNING)
    try:
        stream = io.StringIO()
        with contextlib.redirect_stderr(stream):
            logging.getLogger("gateway.test").warning("to the stderr of the moment")
        assert json.loads(stream.getvalue())["message"] == "to the stderr of the moment"
    finally:
        logging.getLogger().removeHandler(handler)
