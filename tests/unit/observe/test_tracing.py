"""The tracing facade: when the OTEL_* variables turn it on, what a bad setting says, and
that off it builds nothing."""

from __future__ import annotations

import sys

import pytest

from gateway.errors import ConfigError
from gateway.observe import tracing

ENDPOINT = "http://127.0.0.1:4318"


@pytest.mark.parametrize(
    "env,wanted",
    [
        ({}, False),
        ({"OTEL_SERVICE_NAME": "gw"}, False),  # naming a service asks for no export
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"{ENDPOINT}/v1/traces"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": " "}, False),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, True),  # the SDK's default endpoint, localhost:4318
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT, "OTEL_SDK_DISABLED": "true"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT, "OTEL_TRACES_EXPORTER": "none"}, False),
    ],
)
def test_on_only_when_the_standard_variables_ask(env, wanted):
    assert tracing.wanted(env) is wanted
    assert tracing.middlewares(env) == ([tracing.server_spans] if wanted else [])


def test_another_exporter_is_refused_naming_the_variable():
    with pytest.raises(ConfigError) as caught:
        tracing.check_environment({"OTEL_TRACES_EXPORTER": "zipkin"})
    assert caught.value.path == "OTEL_TRACES_EXPORTER"
    assert "OTLP/HTTP only" in caught.value.message and '"none"' in caught.value.message


def test_missing_extra_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "opentelemetry.sdk.trace", None)  # import fails
    with pytest.raises(ConfigError) as caught:
        tracing.check_environment({"OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT})
    assert tracing.INSTALL_HINT in caught.value.message
    tracing.check_environment({})  # off: nothing to import, nothing to say


def test_off_the_facade_builds_nothing():
    assert not tracing.enabled()

    def never() -> dict[str, str]:
        raise AssertionError("attributes built while tracing is off")

    with tracing.span("decide", never) as notes:
        notes.note("gateway.outcome", "sent")
    assert tracing.span("a") is tracing.span("b")  # one shared no-op, no object per call
    tracing.annotate(never)
    headers: dict[str, str] = {}
    tracing.forward_trace_context(headers)
    assert headers == {} and tracing.current_trace_id() is None


@pytest.mark.parametrize(
    "variable,value",
    [
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/json"),
    ],
)
def test_another_protocol_is_refused_naming_the_variable(variable, value):
    # The exporter sends protobuf over HTTP whatever the variable says: a gRPC collector
    # port would drop every span while the gateway said nothing.
    with pytest.raises(ConfigError) as caught:
        tracing.check_environment({"OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT, variable: value})
    assert caught.value.path == variable
    assert '"http/protobuf"' in caught.value.message and "4318" in caught.value.message
    tracing.check_environment({"OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT, variable: "http/protobuf"})
    tracing.check_environment({"OTEL_SDK_DISABLED": "true", variable: value})  # off


@pytest.mark.parametrize(
    "variable,value",
    [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "otel-host:4318"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "grpc://collector:4317"),
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "https:///v1/traces"),
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://[::1/v1/traces"),
    ],
)
def test_an_endpoint_that_is_no_url_is_refused_without_its_value(variable, value):
    with pytest.raises(ConfigError) as caught:
        tracing.check_environment({variable: value})
    assert caught.value.path == variable
    assert "http://collector:4318" in caught.value.message
    assert value not in caught.value.message  # it may carry credentials
