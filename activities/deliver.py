"""Deliver one plan step through the outbox, captured or live: exactly once per journey step."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from sqlalchemy import Engine
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.counters import count
from retention.crm.sync import CrmSync
from retention.customer import CustomerSnapshot
from retention.delivery.alerting import AlertPoster
from retention.delivery.alerts import ALERT_STEP_CHANNEL, step_alert
from retention.delivery.booking import booking_link
from retention.delivery.channels import CSM_CHANNELS
from retention.delivery.providers import Provider
from retention.delivery.requests import DeliverInput, DeliverRequest, DeliveryReceipt
from retention.delivery.send import CAPTURE_ONLY, deliver
from retention.delivery.templates import TemplateSet
from retention.errors import DeliveryFailed, InvalidInput
from retention.plan import Channel
from retention.rulebook.archive import archived_templates
from retention.rulebook.source import RulebookSource
from retention.runtime.metrics import SENDS
from retention.store.csm_tasks import crm_url_of
from retention.store.records import customer_as_known, journey_snapshot, latest_drivers
from retention.store.suppressions import add_suppression, as_request
from retention.suppression import SuppressRequest, with_person_found

CRM_PUSH_NOW = 5  # of a customer's tasks due a push, at most these right after a delivery


class DeliverActivities:
    def __init__(
        self,
        engine: Engine,
        outbox_dir: Path,
        rulebooks: RulebookSource,
        providers: Mapping[Channel, Provider] = CAPTURE_ONLY,
        csm_booking_url: str | None = None,
        alerts: AlertPoster | None = None,
        crm: CrmSync | None = None,
    ) -> None:
        self._engine = engine
        self._outbox_dir = outbox_dir
        self._rulebooks = rulebooks
        self._providers = providers
        self._csm_booking_url = csm_booking_url
        self._alerts = alerts
        self._crm = crm

    @activity.defn(name="deliver")
    def deliver(self, step: DeliverInput) -> DeliveryReceipt:
        request = step.to(self._customer_of(step))
        # A deployment setting, so the activity adds it: the workflow knows no settings.
        link = booking_link(self._csm_booking_url, request.customer.profile.assigned_csm)
        request = request.model_copy(update={"csm_booking_link": link})
        try:
            receipt = deliver(
                self._engine,
                self._outbox_dir,
                self._templates_for(request),
                request,
                self._providers,
            )
            if receipt.channel in CSM_CHANNELS and not receipt.held_out:
                self._push_to_crm(request.customer.customer_id)
            self._alert_csm(request, receipt)  # after the push: the alert links the CRM task
        except InvalidInput as exc:
            count(SENDS, channel=request.step.channel, status="invalid")
            raise ApplicationError(str(exc), type="InvalidInput", non_retryable=True) from exc
        except DeliveryFailed as exc:
            count(SENDS, channel=request.step.channel, status="failed")
            # The type names the failure for retry policies and the step's note; a 429's
            # Retry-After replaces the policy's backoff for the next attempt.
            raise ApplicationError(
                str(exc),
                type=type(exc).__name__,
                non_retryable=exc.permanent,
                next_retry_delay=exc.retry_after,
            ) from exc
        status = _send_status(receipt)
        count(SENDS, channel=receipt.channel, status=status)
        activity.logger.info("%s %s via %s", request.step.action, status, receipt.channel)
        return receipt

    def _push_to_crm(self, customer_id: str) -> None:
        """The customer's new CSM task into the CRM now, after the delivery's transaction. Never
        fails the step: what does not get there waits for the `crm-sync` schedule."""
        if self._crm is None:
            return
        try:
            self._crm.push_due(customer_id=customer_id, limit=CRM_PUSH_NOW)
        except Exception:  # a CRM or database fault must not cost the journey its step
            activity.logger.warning("CRM push for %s left to crm-sync", customer_id, exc_info=True)

    @activity.defn(name="suppress")
    def suppress(self, request: SuppressRequest) -> SuppressRequest:
        """Put the customer, or the one person the request names, on the suppression list for
        a channel (idempotent); answers with the entry in force, which may be an earlier one."""
        if request.contact_id is not None and request.person is None:
            # The event named a contact by id: their address is in the customer's snapshot.
            known = customer_as_known(self._engine, request.customer_id)
            request = with_person_found(request, known)
        return as_request(add_suppression(self._engine, request))

    def _alert_csm(self, request: DeliverRequest, receipt: DeliveryReceipt) -> None:
        """A step on the `internal` channel (alert_csm, escalation_review) is also posted to
        Slack when alerts are on; again on a retry, which the alert's own outbox row makes
        harmless. A refusal is final on that row and leaves the step delivered."""
        if self._alerts is None or receipt.channel != ALERT_STEP_CHANNEL or receipt.held_out:
            return
        url = self._alerts.journey_url(request.journey_id)
        drivers = latest_drivers(self._engine, request.journey_id)
        task_url = crm_url_of(self._engine, receipt.outbox_id)
        self._alerts.post(step_alert(request, url, drivers, task_url))

    def _customer_of(self, step: DeliverInput) -> CustomerSnapshot:
        if step.customer is not None:
            return step.customer
        if (kept := journey_snapshot(self._engine, step.journey_key)) is None:
            raise ApplicationError(
                f"{step.idempotency_key}: the journey's customer snapshot is gone (erased?)",
                type="InvalidInput",
                non_retryable=True,
            )
        return kept

    def _templates_for(self, request: DeliverRequest) -> TemplateSet:
        """The templates of the rule set that made the journey's plan: held in memory, else
        from the archive; the templates in force only for a version never archived."""
        version = request.rules_version
        if (pinned := self._rulebooks.kept(version)) is not None:
            return pinned.templates
        current = self._rulebooks.current()
        if version is None or version == current.version:
            return current.templates
        if (archived := archived_templates(self._engine, version, current.templates_dir)) is None:
            activity.logger.warning(
                "rules %s not archived: %s renders with %s",
                version,
                request.idempotency_key,
                current.version,
            )
            return current.templates
        return archived


def _send_status(receipt: DeliveryReceipt) -> str:
    if not receipt.outbox_id:
        if receipt.held_until is None:
            return "capped"  # held once already and still held: the step went on without them
        return "held"  # everyone waits for their cap or quiet hours: nothing made yet
    if receipt.duplicate:
        return "duplicate"  # delivered before: a retry or a replay found it in the outbox
    if receipt.held_out:
        return "held_out"
    return "sent" if receipt.mode == "live" else "captured"
