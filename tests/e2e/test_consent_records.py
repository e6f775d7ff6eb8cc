"""Consents as W3C DPV JSON-LD records (issue #21 item 3, CONTRACT §4.3): a subject's
consents read as JSON-LD and expanded by a JSON-LD processor (pyld) with the context the
gateway ships and serves, never the network; a record posted in that shape and read back
the same, on SQLite and PostgreSQL."""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from importlib import resources
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from e2e.conftest import start_gateway
from pyld import jsonld

from gateway.log.columns import checked_search
from gateway.policy import dpv
from gateway.store.records import LogQuery
from gateway.web.keys import LOG, STORE

SUBJECT = "S-dpv-1"
DPV = "https://w3id.org/dpv#"
DCT = "http://purl.org/dc/terms/"
GW = "urn:disclosure-gateway:"
LD = {"Accept": "application/ld+json"}
SHIPPED = json.loads(
    resources.files("gateway.policy").joinpath(dpv.CONTEXT_FILE).read_text(encoding="utf-8")
)


def offline_loader(url: str, options: Any = None) -> dict[str, Any]:
    """pyld's document loader: the shipped context at its served path, nothing else."""
    if url.endswith(dpv.CONTEXT_PATH):
        return {"contextUrl": None, "documentUrl": url, "document": copy.deepcopy(SHIPPED)}
    raise AssertionError(f"the expansion tried to fetch {url}: only the shipped context")


def expand(document: dict[str, Any], base: str = "") -> list[dict[str, Any]]:
    """`document` expanded; `base`: where it was sent, for a context named by its path."""
    return jsonld.expand(document, {"documentLoader": offline_loader, "base": base})


def record(**changes: Any) -> dict[str, Any]:
    """A consent record as POST /v1/consents takes it with Content-Type application/ld+json."""
    body: dict[str, Any] = {
        "@context": dpv.CONTEXT_PATH,
        "@type": "ConsentRecord",
        "hasDataSubject": {"@type": "DataSubject", "identifier": SUBJECT},
        "hasDataController": {
            "@id": "https://kokkok.example/",
            "@type": "DataController",
            "hasName": "Lao Smart Mobility Co., Ltd",
        },
        "hasPurpose": ["Marketing", "ServiceProvision"],
        "hasLegalBasis": "Consent",
        "hasRecipient": ["gw:partner:adreach", "gw:partner:lao-credit-bureau"],
        "recipientCategory": ["gw:partner-category:data_analytics"],
        "hasPersonalData": [
            {"@id": "gw:field:health_status", "@type": "SpecialCategoryPersonalData"}
        ],
        "hasNotice": {
            "@id": "gw:privacy-policy:2024-09-30",
            "@type": "PrivacyNotice",
            "version": "2024-09-30",
        },
        "hasConsentStatus": [
            {
                "@type": "ConsentGiven",
                "isIndicatedAtTime": "2026-01-02T03:04:05Z",
                "hasIndicationMethod": "app",
                "hasDuration": {"@type": "UntilTimeDuration", "value": "2099-01-01T00:00:00Z"},
            }
        ],
        "evidence": "ev-123",
    }
    return body | changes


async def acts(client: TestClient) -> list[tuple[str, str]]:
    """(action, actor) of every action entry of the log."""
    await client.server.app[LOG].settle()
    found = await checked_search(client.server.app[STORE], LogQuery(kind="action", limit=100))
    return [(entry.data["action"], entry.data["actor"]) for entry in found]


async def post_record(gateway, auth, body: dict[str, Any]):
    return await gateway.post(
        "/v1/consents",
        data=json.dumps(body),
        headers={**auth("customer-app"), "Content-Type": dpv.MEDIA_TYPE},
    )


async def test_the_context_is_served_from_the_package_with_a_long_cache(gateway) -> None:
    r = await gateway.get(dpv.CONTEXT_PATH)
    assert r.status == 200
    assert r.content_type == dpv.MEDIA_TYPE
    assert "max-age=604800" in r.headers["Cache-Control"]
    assert json.loads(await r.read()) == SHIPPED
    again = await gateway.get(dpv.CONTEXT_PATH, headers={"If-None-Match": r.headers["ETag"]})
    assert again.status == 304


async def test_the_context_url_is_on_the_public_url_when_set(tmp_config, auth) -> None:
    public_url = "https://gateway.example.com"
    config = replace(tmp_config, server=replace(tmp_config.server, public_url=public_url))
    client = await start_gateway(config)
    try:
        r = await post_record(client, auth, record())
        assert r.status == 201, await r.text()
        answered = await r.json(content_type=None)
        r = await client.get(
            f"/v1/subjects/{SUBJECT}/consents", headers=auth("privacy-office") | LD
        )
        read = await r.json(content_type=None)
    finally:
        await client.close()
    # Not the address the request came to (127.0.0.1, the proxy's side of it).
    assert answered["@context"] == read["@context"] == f"{public_url}{dpv.CONTEXT_PATH}"


async def test_a_subjects_consents_as_dpv_json_ld_expanded(gateway, auth) -> None:
    plain = {
        "subject": SUBJECT,
        "purposes": ["service_provision"],
        "partner_categories": ["payment_processor"],
        "policy_version": "2024-09-30",
        "obtained_at": "2026-01-01T00:00:00Z",
        "method": "web",
    }
    r = await gateway.post("/v1/consents", json=plain, headers=auth("customer-app"))
    assert r.status == 201, await r.text()
    consent_id = (await r.json())["id"]
    withdrawn = await gateway.post(
        f"/v1/consents/{consent_id}/withdraw", headers=auth("customer-app")
    )
    assert withdrawn.status == 200, await withdrawn.text()

    r = await gateway.get(f"/v1/subjects/{SUBJECT}/consents", headers=auth("privacy-office") | LD)
    assert r.status == 200, await r.text()
    assert r.content_type == dpv.MEDIA_TYPE
    document = await r.json(content_type=None)
    assert document["@context"].endswith(dpv.CONTEXT_PATH)
    [node] = expand(document)

    assert node["@id"] == f"{GW}consent:{consent_id}"
    assert node["@type"] == [f"{DPV}ConsentRecord"]
    assert node[f"{DCT}identifier"] == [{"@value": consent_id}]
    [subject] = node[f"{DPV}hasDataSubject"]
    assert subject["@type"] == [f"{DPV}DataSubject"]
    assert subject[f"{DCT}identifier"] == [{"@value": SUBJECT}]
    [controller] = node[f"{DPV}hasDataController"]
    assert controller["@id"] == "https://kokkok.example/"
    assert controller[f"{DPV}hasName"] == [{"@value": "Lao Smart Mobility Co., Ltd"}]
    assert node[f"{DPV}hasPurpose"] == [{"@id": f"{DPV}ServiceProvision"}]
    assert node[f"{DPV}hasLegalBasis"] == [{"@id": f"{DPV}Consent"}]
    assert node[f"{GW}recipientCategory"] == [{"@id": f"{GW}partner-category:payment_processor"}]
    [notice] = node[f"{DPV}hasNotice"]
    assert notice["@type"] == [f"{DPV}PrivacyNotice"]
    assert notice[f"{DCT}hasVersion"] == [{"@value": "2024-09-30"}]
    given, withdrawal = node[f"{DPV}hasConsentStatus"]
    assert given["@type"] == [f"{DPV}ConsentGiven"]
    assert given[f"{DPV}isIndicatedAtTime"] == [
        {"@type": "http://www.w3.org/2001/XMLSchema#dateTime", "@value": "2026-01-01T00:00:00Z"}
    ]
    assert given[f"{DPV}hasIndicationMethod"] == [{"@value": "web"}]
    assert withdrawal["@type"] == [f"{DPV}ConsentWithdrawn"]
    assert f"{DPV}isIndicatedAtTime" in withdrawal
    # The read is a person's read of personal data, as the plain one: an action entry.
    assert (await acts(gateway))[-1] == ("read_subject_consents", "privacy-office")


async def test_plain_json_stays_the_default(gateway, auth) -> None:
    r = await post_record(gateway, auth, record())
    assert r.status == 201, await r.text()
    for accept in (None, "application/json", "application/json, application/ld+json"):
        headers = auth("privacy-office") | ({"Accept": accept} if accept else {})
        r = await gateway.get(f"/v1/subjects/{SUBJECT}/consents", headers=headers)
        assert r.content_type == "application/json"
        assert [c["purposes"] for c in (await r.json())["consents"]] == [
            ["marketing", "service_provision"]
        ]


@pytest.mark.parametrize("context", ["inline", "url"])
async def test_a_record_posted_is_read_back_the_same(gateway, auth, context: str) -> None:
    sent = record()
    if context == "inline":
        sent["@context"] = SHIPPED["@context"]
    r = await post_record(gateway, auth, sent)
    assert r.status == 201, await r.text()
    assert r.content_type == dpv.MEDIA_TYPE
    answered = await r.json(content_type=None)
    consent_id = answered["identifier"]
    assert ("consent_given", "customer-app") in await acts(gateway)

    r = await gateway.get(f"/v1/subjects/{SUBJECT}/consents", headers=auth("privacy-office") | LD)
    [read] = (await r.json(content_type=None))["@graph"]
    assert read["@id"] == f"gw:consent:{consent_id}"
    assert {"@context": sent["@context"], **read} == {
        **sent,
        "@id": f"gw:consent:{consent_id}",
        "identifier": consent_id,
    }
    assert {k: v for k, v in answered.items() if k != "@context"} == read
    # …and the same graph once expanded: what any JSON-LD reader sees.
    [sent_node] = expand(sent, base=str(gateway.make_url("/v1/consents")))
    [read_node] = expand({"@context": answered["@context"], **read})
    assert read_node.pop("@id") == f"{GW}consent:{consent_id}"
    assert read_node.pop(f"{DCT}identifier") == [{"@value": consent_id}]
    assert read_node == sent_node
    # The plain shape reads the same consent.
    r = await gateway.get(f"/v1/subjects/{SUBJECT}/consents", headers=auth("privacy-office"))
    [plain] = (await r.json())["consents"]
    assert plain["partners"] == ["adreach", "lao-credit-bureau"]
    assert plain["partner_categories"] == ["data_analytics"]
    assert plain["special_categories"] == ["health_status"]
    assert plain["expires_at"] == "2099-01-01T00:00:00Z"
    assert plain["evidence"] == "ev-123"


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"hasPurpose": ["Marketing", "Gossip"]}, "'hasPurpose[1]' is not one of"),
        ({"hasRecipient": ["gw:partner:nobody"]}, "'hasRecipient' names 1 partner id(s)"),
        ({"hasRecipient": ["https://elsewhere/x"]}, "'hasRecipient[0]' must be an IRI"),
        (
            {"recipientCategory": ["gw:partner-category:spies"]},
            "'recipientCategory[0]' is not one of",
        ),
        ({"@context": "https://w3id.org/dpv"}, "'@context' must be the gateway's"),
        ({"@id": "gw:consent:mine"}, "'@id' and 'identifier' are set by the gateway"),
        (
            {"hasNotice": {"@type": "PrivacyNotice", "version": "2999-01-01"}},
            "'hasNotice.version' is later than the policy in force",
        ),
        (
            {"hasConsentStatus": [{"@type": "ConsentWithdrawn"}]},
            "'hasConsentStatus[0].@type' must be \"ConsentGiven\"",
        ),
        (
            {"hasDataSubject": {"@type": "DataSubject", "identifier": "not an id"}},
            "'hasDataSubject.identifier'",
        ),
    ],
)
async def test_a_record_is_refused_as_the_plain_body_naming_its_member(
    gateway, auth, change: dict[str, Any], named: str
) -> None:
    r = await post_record(gateway, auth, record(**change))
    assert r.status == 400
    problem = await r.json(content_type=None)
    assert r.content_type == "application/problem+json"
    assert problem["type"].endswith("/invalid_request")
    assert named in problem["detail"]
    assert "not an id" not in problem["detail"]
    r = await gateway.get(f"/v1/subjects/{SUBJECT}/consents", headers=auth("privacy-office"))
    assert (await r.json())["consents"] == []


async def test_another_content_type_is_refused_naming_both_accepted(gateway, auth) -> None:
    r = await gateway.post(
        "/v1/consents",
        data=json.dumps(record()),
        headers={**auth("customer-app"), "Content-Type": "text/plain"},
    )
    assert r.status == 400
    detail = (await r.json(content_type=None))["detail"]
    assert "application/json" in detail and dpv.MEDIA_TYPE in detail and "'text/plain'" in detail
