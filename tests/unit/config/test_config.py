"""config.toml: the shipped one loads; the 7-business-day notice rule (policy VIII) holds."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pytest

from gateway.config.model import business_days_between, load_config
from gateway.errors import ConfigErrors

REPO = Path(__file__).resolve().parents[3]


def test_shipped_config_loads():
    config = load_config(REPO / "config.toml")
    assert config.storage_url.startswith("sqlite:///")
    assert config.policy.version == "2024-09-30"
    assert "discloser" in config.callers["payments-service"].roles
    assert config.auth.algorithms == ("ES256", "Ed25519")


def test_business_days():
    assert business_days_between(date(2024, 9, 19), date(2024, 9, 30)) == 7  # Thu → Mon
    assert business_days_between(date(2024, 9, 20), date(2024, 9, 23)) == 1  # Fri → Mon


def with_policy(tmp_path: Path, notified: str, effective: str, extra: str = "") -> Path:
    text = (REPO / "config.toml").read_text(encoding="utf-8")
    text = text.replace("notified_on = 2024-09-19", f"notified_on = {notified}")
    text = text.replace("effective_on = 2024-09-30", f"effective_on = {effective}")
    path = tmp_path / "config.toml"
    path.write_text(text + extra, encoding="utf-8")
    return path


# policy: VIII amendments need 7 business days' notice.
def test_effective_on_less_than_seven_business_days_refused(tmp_path: Path):
    path = with_policy(tmp_path, "2024-09-20", "2024-09-30")  # 6 business days
    with pytest.raises(ConfigErrors) as exc:
        load_config(path)
    error = exc.value.errors[0]
    assert "6 business day(s)" in error.message and "2024-10-01" in error.message
    line = next(
        i for i, t in enumerate(path.read_text().splitlines(), 1) if t.startswith("effective_on")
    )
    assert error.line == line


def test_unknown_caller_role_and_inline_secret(tmp_path: Path):
    extra = '\n[[callers]]\nid = "x"\nroles = ["admin"]\npartners = []\npurposes = []\n'
    path = with_policy(tmp_path, "2024-09-19", "2024-09-30", extra)
    text = path.read_text().replace(
        'audience = "disclosure-gateway"', 'audience = "disclosure-gateway"\nclient_secret = "x"'
    )
    path.write_text(text)
    with pytest.raises(ConfigErrors) as exc:
        load_config(path)
    messages = " | ".join(str(e) for e in exc.value.errors)
    assert "unknown role 'admin'" in messages
    assert "secret inline" in messages


def test_caller_token_algorithms_never_none_or_hs(tmp_path: Path):
    path = with_policy(tmp_path, "2024-09-19", "2024-09-30")
    path.write_text(
        path.read_text().replace(
            'algorithms = ["ES256", "Ed25519"]', 'algorithms = ["HS256", "none"]'
        )
    )
    with pytest.raises(ConfigErrors, match="never none or HS"):
        load_config(path)


def test_log_instance_timeout_defaults_and_is_validated(tmp_path: Path):
    assert load_config(REPO / "config.toml").log.instance_timeout_s == 15.0
    shipped = (REPO / "config.toml").read_text(encoding="utf-8")
    text = re.sub(r"(?m)^instance_timeout_s = .*\n", "", shipped)
    path = tmp_path / "config.toml"
    path.write_text(text)
    assert load_config(path).log.instance_timeout_s == 15.0  # the default
    path.write_text(
        text.replace(
            "checkpoint_interval_s = 1", "checkpoint_interval_s = 1\ninstance_timeout_s = 2"
        )
    )
    assert load_config(path).log.instance_timeout_s == 2.0
    for bad in ("0", "-1", '"15"', "true", "100000"):
        path.write_text(
            text.replace(
                "checkpoint_interval_s = 1",
                f"checkpoint_interval_s = 1\ninstance_timeout_s = {bad}",
            )
        )
        with pytest.raises(ConfigErrors) as exc:
            load_config(path)
        error = exc.value.errors[0]
        assert "log.instance_timeout_s must be a number of seconds" in error.message, bad
        assert error.line == text.splitlines().index("checkpoint_interval_s = 1") + 2


def test_witness_policy_is_a_path_beside_config_toml_or_absent(tmp_path: Path):
    assert load_config(REPO / "config.toml").log.witness_policy is None  # not witnessed
    text = (REPO / "config.toml").read_text(encoding="utf-8")
    path = tmp_path / "config.toml"
    path.write_text(text.replace("[log]\n", '[log]\nwitness_policy = "witnesses.txt"\n', 1))
    assert load_config(path).log.witness_policy == tmp_path / "witnesses.txt"
    override = {"GATEWAY_LOG_WITNESS_POLICY": "/etc/gateway/witnesses"}
    assert load_config(path, override).log.witness_policy == Path("/etc/gateway/witnesses")
    assert load_config(path, {"GATEWAY_LOG_WITNESS_POLICY": ""}).log.witness_policy is None
    path.write_text(text.replace("[log]\n", "[log]\nwitness_policy = 3\n", 1))
    with pytest.raises(ConfigErrors) as caught:
        load_config(path)
    (error,) = caught.value.errors
    assert "'witness_policy' must be a path" in error.message
    assert error.line == text.splitlines().index("[log]") + 2


def test_retention_defaults_and_is_validated(tmp_path: Path):
    shipped = (REPO / "config.toml").read_text(encoding="utf-8")
    retention = load_config(REPO / "config.toml").retention
    assert (retention.instances_days, retention.idempotency_hours) == (7.0, 24.0)
    text = re.sub(r"(?ms)^\[retention\]\n.*?\n\n", "", shipped)
    assert "[retention]" not in text
    path = tmp_path / "config.toml"
    path.write_text(text)
    defaults = load_config(path).retention
    assert (defaults.instances_days, defaults.idempotency_hours) == (7.0, 24.0)
    path.write_text(text + "\n[retention]\ninstances_days = 30\nidempotency_hours = 1.5\n")
    chosen = load_config(path).retention
    assert chosen.instances.days == 30 and chosen.idempotency_keys.total_seconds() == 5400
    line = len((text + "\n[retention]\n").splitlines()) + 1
    for key, bad in (
        ("instances_days", "0"),
        ("instances_days", "0.5"),
        ("instances_days", "-7"),
        ("instances_days", '"7"'),
        ("instances_days", "100000"),
        ("idempotency_hours", "0.5"),
        ("idempotency_hours", "true"),
        ("idempotency_hours", "9000"),
    ):
        path.write_text(text + f"\n[retention]\n{key} = {bad}\n")
        with pytest.raises(ConfigErrors) as exc:
            load_config(path)
        error = exc.value.errors[0]
        assert f"retention.{key} must be a number of" in error.message, bad
        assert error.line == line, (key, bad)
    path.write_text(text + "\n[retention]\ncheckpoints_days = 30\n")
    with pytest.raises(ConfigErrors, match="unknown key 'checkpoints_days'"):
        load_config(path)


def test_controller_defaults_overrides_and_is_validated(tmp_path: Path):
    shipped = (REPO / "config.toml").read_text(encoding="utf-8")
    controller = load_config(REPO / "config.toml").controller
    assert (controller.name, controller.iri) == (
        "Lao Smart Mobility Co., Ltd",
        "https://kokkok.example/",
    )
    text = re.sub(r"(?ms)^\[controller\]\n.*?\n\n", "", shipped)
    assert "[controller]" not in text
    path = tmp_path / "config.toml"
    path.write_text(text)
    assert load_config(path).controller == controller  # the defaults: the policy's company
    override = {"GATEWAY_CONTROLLER_NAME": "Other Co.", "GATEWAY_CONTROLLER_IRI": "urn:lei:X1"}
    assert load_config(path, override).controller.name == "Other Co."
    assert load_config(path, override).controller.iri == "urn:lei:X1"
    line = len((text + "\n[controller]\n").splitlines()) + 1
    for key, bad, says in (
        ("name", '""', "controller.name must be"),
        ("name", "3", "controller.name must be"),
        ("iri", '"kokkok.example"', "controller.iri must be an absolute IRI"),
        ("iri", '"https://kokkok.example/a b"', "controller.iri must be an absolute IRI"),
        ("colour", '"red"', "unknown key 'colour'"),
    ):
        path.write_text(text + f"\n[controller]\n{key} = {bad}\n")
        with pytest.raises(ConfigErrors) as exc:
            load_config(path)
        (error,) = exc.value.errors
        assert says in error.message, (key, bad)
        assert error.line == line, (key, bad)


def test_caller_limits_and_the_log_queue_bound_are_read_and_checked(tmp_path: Path):
    shipped = load_config(REPO / "config.toml")
    assert shipped.log.max_pending_appends == 10_000  # far above a healthy store's queue
    assert all(c.max_in_flight is None and c.rate is None for c in shipped.callers.values())
    text = (REPO / "config.toml").read_text(encoding="utf-8")
    limited = text.replace(
        'id = "sales-service"\n',
        'id = "sales-service"\nmax_in_flight = 4\nrate = "600/min"\nrate_burst = 20\n',
    ).replace("checkpoint_interval_s = 1", "checkpoint_interval_s = 1\nmax_pending_appends = 50")
    path = tmp_path / "config.toml"
    path.write_text(limited)
    config = load_config(path)
    sales = config.callers["sales-service"]
    assert sales.max_in_flight == 4 and sales.rate is not None
    assert (sales.rate.per_second, sales.rate.burst) == (10.0, 20)
    assert config.log.max_pending_appends == 50
    broken = text.replace(
        'id = "sales-service"\n', 'id = "sales-service"\nmax_in_flight = 0\nrate = "lots"\n'
    ).replace("checkpoint_interval_s = 1", "checkpoint_interval_s = 1\nmax_pending_appends = 0")
    path.write_text(broken)
    with pytest.raises(ConfigErrors) as exc:
        load_config(path)
    lines = broken.splitlines()
    found = {e.message.split(" ")[0]: e.line for e in exc.value.errors}
    assert found["'max_in_flight'"] == lines.index("max_in_flight = 0") + 1
    assert found["rate"] == lines.index('rate = "lots"') + 1
    assert found["log.max_pending_appends"] == lines.index("max_pending_appends = 0") + 1
