"""A CSM alert as Block Kit: a header, the facts as section fields, and link buttons.

Slack's limits: a header's text at most 150 characters, a field's 2000, ten fields a section.
Every value in mrkdwn is escaped (`&`, `<`, `>`), so a customer's name cannot be markup such as
`<!channel>` (a mention of everyone in the channel).
"""

from __future__ import annotations

from typing import Any

from retention.delivery.alerts import CsmAlert

HEADER_MAX = 150


def alert_blocks(alert: CsmAlert) -> list[dict[str, Any]]:
    return [
        {"type": "header", "text": _plain(_cut(alert.headline, HEADER_MAX))},
        {"type": "section", "text": _markdown(f"*Why:* {escape(_cut(alert.reason, 1900))}")},
        {"type": "section", "fields": [_markdown(f"*{n}*\n{v}") for n, v in _facts(alert)]},
        {"type": "actions", "elements": _buttons(alert)},
    ]


def _facts(alert: CsmAlert) -> list[tuple[str, str]]:
    facts = [("Customer", f"{alert.customer_name} ({alert.customer_id})")]
    if alert.risk_tier is not None:
        facts.append(("Risk tier", alert.risk_tier))
    if alert.churn_probability is not None:
        facts.append(("Churn probability", f"{alert.churn_probability:.0%}"))
    if alert.fired_rules:
        facts.append(("Rules", ", ".join(alert.fired_rules)))
    if alert.drivers:
        facts.append(("Top model drivers", "\n".join(alert.drivers)))
    facts.append(("CSM", alert.csm or "unassigned"))
    return [(name, escape(_cut(value, 1900))) for name, value in facts]


def _buttons(alert: CsmAlert) -> list[dict[str, Any]]:
    links = [("journey", "Journey in Temporal UI", alert.journey_url)]
    if alert.crm_task_url:
        links.append(("crm_task", "CRM task", alert.crm_task_url))
    return [
        {"type": "button", "action_id": name, "text": _plain(label), "url": url}
        for name, label, url in links
    ]


def escape(text: str) -> str:
    """Text as Slack shows it literally in mrkdwn (and in a message's `text`)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text}


def _markdown(text: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": text}


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
