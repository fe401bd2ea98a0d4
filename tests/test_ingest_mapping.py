"""rules/sources.yaml: loading it, mapping each source's webhooks, signatures, journey openers."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from factories import make_customer, refused_at, replace_once
from pydantic import SecretStr
from typer.testing import CliRunner
from webhooks import (
    generic,
    nested_body,
    segment_track,
    signed,
    stripe_invoice,
    zendesk_ticket,
)

from retention.customer import CustomerEvent
from retention.errors import RulebookError
from retention.ingest.signatures import BadSignature, verify
from retention.ingest.sources import (
    MappingError,
    Sources,
    SourcesWatch,
    load_sources,
    map_payload,
    parse_body,
    sources_findings,
)
from retention.nesting import MAX_NESTING
from retention.rulebook.check import check
from retention.runtime.settings import Settings
from starter import app

RULES = Path(__file__).resolve().parent.parent / "rules"
SECRET = "whsec_test_0123456789"


@pytest.fixture(scope="module")
def sources() -> Sources:
    return load_sources(RULES)


def mapped_event(sources: Sources, source: str, payload: dict[str, Any]) -> CustomerEvent:
    event = map_payload(sources.file.sources[source], payload).event
    assert event is not None
    return event


def test_the_shipped_file_declares_the_four_sources(sources: Sources) -> None:
    assert list(sources.file.sources) == ["generic", "zendesk", "stripe", "segment"]


def test_zendesk_ticket_message_and_satisfaction(sources: Sources) -> None:
    opened = map_payload(sources.file.sources["zendesk"], zendesk_ticket("z-1", "acme"))
    assert (opened.source_event_id, opened.customer_id) == ("z-1", "acme")
    assert opened.event is not None and opened.event.type == "ticket_opened"
    assert opened.event.at is not None
    assert opened.event.at.isoformat() == "2026-11-26T09:00:00+00:00"
    assert opened.event.data["ticket_id"] == "4711"
    comment = zendesk_ticket("z-2", "acme", "ticket.comment_added")
    message = mapped_event(sources, "zendesk", comment)
    assert message.type == "ticket_message"
    assert message.data["text"] == "Still broken, this is frustrating"
    rated = zendesk_ticket("z-3", "acme", "ticket.satisfaction_rated")
    rated["event"] = {"satisfaction": {"score": "bad"}}
    nps = mapped_event(sources, "zendesk", rated)
    assert (nps.type, nps.data["score"]) == ("nps_response", 3)


def test_stripe_kinds_and_a_renewal_told_apart_by_billing_reason(sources: Sources) -> None:
    failed = mapped_event(sources, "stripe", stripe_invoice("evt_1", "acme"))
    assert failed.type == "payment_failed" and failed.data["amount_due"] == 120_000
    assert failed.at is not None and failed.at.timestamp() == 1_764_150_000
    paid = stripe_invoice("evt_2", "acme", "invoice.payment_succeeded")
    assert mapped_event(sources, "stripe", paid).type == "payment_succeeded"
    renewal = stripe_invoice("evt_3", "acme", "invoice.payment_succeeded", "subscription_cycle")
    assert mapped_event(sources, "stripe", renewal).type == "renewed"
    cancelled = stripe_invoice("evt_4", "acme", "customer.subscription.deleted")
    assert mapped_event(sources, "stripe", cancelled).type == "churned"


def test_segment_track_and_generic(sources: Sources) -> None:
    used = mapped_event(sources, "segment", segment_track("m-1", "acme", "Feature Used"))
    assert used.type == "feature_used" and used.data == {"feature": "dashboards", "user": "user-7"}
    nps = mapped_event(sources, "generic", generic("g-1", "acme", "nps_response", score=4))
    assert nps.type == "nps_response" and nps.data == {"score": 4}


def test_an_unmapped_kind_is_ignored_not_refused(sources: Sources) -> None:
    ignored = map_payload(sources.file.sources["segment"], segment_track("m-2", "acme", "Page"))
    assert ignored.event is None and ignored.kind == "Page" and ignored.customer_id == "acme"


@pytest.mark.parametrize(
    ("source", "payload", "field"),
    [
        ("zendesk", {"type": "zen:event-type:ticket.created"}, "id"),
        ("stripe", {**stripe_invoice("e5", "a"), "data": {}}, "data.object.metadata.customer_id"),
        ("segment", {**segment_track("m-3", "acme"), "timestamp": "yesterday"}, "timestamp"),
        ("generic", generic("g-2", "not a valid id!"), "customer_id"),
        ("generic", generic("g-3", "acme", "nps_response", score=11), "data.score"),
        ("generic", [1, 2], "(body)"),
    ],
)
def test_a_malformed_body_names_its_field(
    sources: Sources, source: str, payload: Any, field: str
) -> None:
    with pytest.raises(MappingError) as refused:
        map_payload(sources.file.sources[source], payload)
    assert refused.value.field == field
    assert str(refused.value).startswith(f"{field}: ")


def test_a_webhook_body_nested_too_deep_is_refused_naming_the_body_and_the_limit() -> None:
    with pytest.raises(MappingError) as refused:
        parse_body(nested_body(10_000))
    assert refused.value.field == "(body)"
    assert (
        str(refused.value)
        == f"(body): line 1: nested deeper than the limit of {MAX_NESTING} levels"
    )


def test_a_webhook_body_nested_to_the_limit_is_parsed(sources: Sources) -> None:
    # the body (1) and its `data` (2) hold the lists
    payload = parse_body(nested_body(MAX_NESTING - 2))
    assert mapped_event(sources, "generic", payload).type == "login"
    with pytest.raises(MappingError, match=f"limit of {MAX_NESTING} levels"):
        parse_body(nested_body(MAX_NESTING - 1))


def test_brackets_inside_a_text_are_not_nesting() -> None:
    text = "[{" * 10_000
    body = json.dumps(generic("gen-text", "acme", "login", note=text)).encode()
    assert parse_body(body)["data"]["note"] == text


def test_a_sources_file_nested_too_deep_is_refused_naming_the_line_and_the_limit(
    rules_copy: Path,
) -> None:
    path = rules_copy / "sources.yaml"
    replace_once(
        path, "kind: event\n", "kind: event\n    colour: " + "[" * 10_000 + "]" * 10_000 + "\n"
    )
    with pytest.raises(
        RulebookError,
        match=refused_at(path, "colour") + f"nested deeper than the limit of {MAX_NESTING}",
    ):
        load_sources(rules_copy)


@pytest.mark.parametrize(
    ("old", "new", "at", "refusal"),
    [
        ("kind: event\n", "kind: event\n    colour: blue\n", "colour", "sources.segment.colour"),
        ("Used: feature_used", "Used: feature_usage", "feature_usage", "sources.segment.kinds"),
        ("scheme: stripe", "scheme: rsa", "scheme: rsa", "sources.stripe.signature.scheme"),
        ("{annual_contract_value: {gte: 50000}}", "{arr: {gte: 1}}", "arr", ".*unknown fact 'arr'"),
    ],
)
def test_a_broken_sources_file_is_refused_with_file_and_line(
    rules_copy: Path, old: str, new: str, at: str, refusal: str
) -> None:
    path = rules_copy / "sources.yaml"
    replace_once(path, old, new)
    with pytest.raises(RulebookError, match=refused_at(path, at) + refusal):
        load_sources(rules_copy)


@pytest.mark.parametrize(
    ("old", "new", "named"),
    [
        ("tolerance: 300", "tolerance: -1", "tolerance"),
        ("delivery:\n", "delivery:\n  churned: record\n", "delivery churned: `record`"),
    ],
)
def test_rules_check_and_the_service_refuse_a_broken_sources_file(
    rules_copy: Path, old: str, new: str, named: str
) -> None:
    assert check(rules_copy) + sources_findings(rules_copy) == []
    replace_once(rules_copy / "sources.yaml", old, new)
    findings = sources_findings(rules_copy)
    assert len(findings) == 1 and "sources.yaml:" in findings[0] and named in findings[0]
    checked = CliRunner().invoke(app, ["rules", "check", str(rules_copy)])
    assert checked.exit_code == 1 and findings[0] in checked.output.replace("\n", "")
    env = {
        **os.environ,
        "RETENTION_RULES_DIR": str(rules_copy),
        "RETENTION_DATABASE_URL": f"sqlite:///{rules_copy.parent / 'retention.db'}",
    }
    started = subprocess.run(
        [sys.executable, "-m", "retention.ingest", "--port", "1"],
        cwd=RULES.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert started.returncode == 1
    assert started.stderr.startswith(f"error: {rules_copy / 'sources.yaml'}:")
    assert "Traceback" not in started.stderr


def test_an_edit_applies_without_a_restart_and_a_broken_one_keeps_the_last_good(
    rules_copy: Path, caplog: pytest.LogCaptureFixture
) -> None:
    watch = SourcesWatch(rules_copy)
    page = segment_track("m-9", "acme", "Page Viewed")
    assert map_payload(watch().file.sources["segment"], page).event is None
    replace_once(
        rules_copy / "sources.yaml",
        "Logged In: login",
        "Logged In: login\n      Page Viewed: login",
    )
    edited = watch()
    mapped = map_payload(edited.file.sources["segment"], page)
    assert mapped.event is not None and mapped.event.type == "login"
    replace_once(rules_copy / "sources.yaml", "Page Viewed: login", "Page Viewed: looked")
    with caplog.at_level(logging.ERROR):
        assert watch() is edited
    assert f"sources refused, keeping {edited.version}" in caplog.text
    assert "sources.yaml:" in caplog.text


# ---- signatures ------------------------------------------------------------------------------


@pytest.mark.parametrize("source", ["generic", "zendesk", "stripe", "segment"])
def test_each_scheme_accepts_its_own_signature_and_refuses_a_tampered_body(
    sources: Sources, source: str
) -> None:
    body, headers = signed(sources, source, SECRET, {"id": "e-1", "n": 1})
    rule = sources.file.sources[source].signature
    lower = {k.lower(): v for k, v in headers.items()}
    verify(rule, SecretStr(SECRET), lower, body)
    with pytest.raises(BadSignature, match="does not match"):
        verify(rule, SecretStr(SECRET), lower, body.replace(b"1", b"2"))
    with pytest.raises(BadSignature, match="does not match"):
        verify(rule, SecretStr("another secret"), lower, body)
    with pytest.raises(BadSignature, match="missing"):
        verify(rule, SecretStr(SECRET), {}, body)
    with pytest.raises(BadSignature, match="no secret is configured"):
        verify(rule, None, lower, body)


def test_a_stripe_signature_outside_the_tolerance_is_a_replay(sources: Sources) -> None:
    rule = sources.file.sources["stripe"].signature
    body, headers = signed(sources, "stripe", SECRET, {"id": "evt_9"}, at=1_000_000)
    lower = {k.lower(): v for k, v in headers.items()}
    verify(rule, SecretStr(SECRET), lower, body, now=1_000_000 + 299)
    with pytest.raises(BadSignature, match="tolerance"):
        verify(rule, SecretStr(SECRET), lower, body, now=1_000_000 + 301)
    stamp, v1 = lower["stripe-signature"].split(",")
    refreshed = {"stripe-signature": f"t=1000400,{v1}"}  # a newer t with the old signature
    with pytest.raises(BadSignature, match="does not match"):
        verify(rule, SecretStr(SECRET), refreshed, body, now=1_000_400)
    rolled = {"stripe-signature": f"{stamp},v1={'0' * 64},{v1}"}  # two v1s while rolling keys
    verify(rule, SecretStr(SECRET), rolled, body, now=1_000_000)


def test_a_refusal_never_shows_the_secret(sources: Sources) -> None:
    rule = sources.file.sources["generic"].signature
    body = json.dumps({"id": "x"}).encode()
    with pytest.raises(BadSignature) as refused:
        verify(rule, SecretStr(SECRET), {"x-retention-signature": "sha256=00"}, body)
    assert SECRET not in str(refused.value) and "sha256=00" not in str(refused.value)


# ---- which events open a journey -------------------------------------------------------------


def test_payment_failed_opens_a_journey_for_a_high_value_customer_only(sources: Sources) -> None:
    failed = CustomerEvent(type="payment_failed")
    big = make_customer(financial={"annual_contract_value": 90_000.0})
    small = make_customer(financial={"annual_contract_value": 12_000.0})
    assert sources.opener(failed, big) == "opens_journey[0]"
    assert sources.opener(failed, small) is None
    assert sources.opener(CustomerEvent(type="login"), big) is None


# ---- secrets ---------------------------------------------------------------------------------


def test_a_source_secret_comes_from_the_environment_or_the_secrets_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    settings = Settings()
    monkeypatch.delenv("RETENTION_INGEST_SECRET_STRIPE", raising=False)
    monkeypatch.delenv("RETENTION_SECRETS_DIR", raising=False)
    assert settings.ingest_secret("stripe") is None
    (tmp_path / "retention_ingest_secret_stripe").write_text("from-file\n")
    monkeypatch.setenv("RETENTION_SECRETS_DIR", str(tmp_path))
    secret = settings.ingest_secret("stripe")
    assert secret is not None and secret.get_secret_value() == "from-file"
    assert "from-file" not in repr(secret)
    monkeypatch.setenv("RETENTION_INGEST_SECRET_STRIPE", "from-env")
    assert settings.ingest_secret("stripe") == SecretStr("from-env")
