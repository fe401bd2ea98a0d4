"""RetentionJourney: assess a customer, decide a plan, carry it out over days and weeks.

Deterministic orchestration only: every clock read is `workflow.now()`, every piece of I/O is
an activity. Customer events arrive as the `customer_event` signal, operator commands as
updates, and the whole state answers the `state` query.
"""

import asyncio
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeUpdate
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from workflows.journey_vocabulary import (
        JOURNEY_ROLLING_OVER,
        JOURNEYS_CLOSED,
        JOURNEYS_STARTED,
        MAX_EARLY_EVENTS,
        MAX_EVENTS_PER_RUN,
        AssessActivities,
        AssessInput,
        Assessment,
        CancelRequest,
        CommandResult,
        CustomerEvent,
        DecideActivities,
        DecideInput,
        Decision,
        DeliverActivities,
        DeliverInput,
        DeliveryReceipt,
        EscalateRequest,
        EventReceipt,
        EventRecord,
        GuardRails,
        Hold,
        JourneyClock,
        JourneyContext,
        JourneyOptions,
        JourneyPolicy,
        JourneyRequest,
        JourneyScores,
        JourneyState,
        Metric,
        PauseRequest,
        RecordActivities,
        RecordInput,
        RescoreActivities,
        Rescored,
        RescoreInput,
        ResumeRequest,
        Stage,
        StepState,
        StrategyChange,
        SuppressRequest,
        ValidationError,
        add_campaigns,
        address_of,
        describe_validation_error,
        follow_campaigns,
        hold_for,
        likely_channel,
        outcome_label,
        reached_by,
        scheduled,
        search_attributes,
        unsubscribe_request,
    )

# Scoring and deciding are pure reads plus a record: retry a few times, never on bad input.
SCORING_TIMEOUT = timedelta(seconds=60)
SCORING_RETRY = RetryPolicy(
    maximum_attempts=5,
    non_retryable_error_types=["CustomerNotFound", "RulebookError", "InvalidInput"],
)
# Delivery is idempotent through the outbox, so it may retry for as long as a provider is down.
DELIVERY_TIMEOUT = timedelta(seconds=60)
DELIVERY_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=5),
    non_retryable_error_types=["InvalidInput"],
)
RECORDING_TIMEOUT = timedelta(seconds=30)
# Patches: journeys whose history was made without them keep behaving as they did.
RECORD_UNSUBSCRIBES = "record-unsubscribe"  # an unsubscribed event puts the channel on the list
WAKE_FOR_EARLIER_MOMENT = "wake-for-earlier-moment"  # an escalation may bring the next moment on
GUARD_RAILS = "delivery-guard-rails"  # frequency caps and quiet hours hold a step back
# One activity scores and decides; search attributes are upserted only when a value changes,
# and the stage only when the journey settles in one (not `intervening` or `rescoring`, which
# last seconds and cost two upserts a step; the `state` query and the UI details show them).
LEAN_HISTORY = "lean-history"
SETTLED_STAGES: frozenset[Stage] = frozenset({"assessing", "waiting", "paused", "closed"})
# The customer snapshot travels once: the first assessment keeps it by journey key, and later
# assessments and deliveries name it (docs/architecture.md). The result leaves out the snapshot
# and the policy, which the start input and the first decision already hold.
COMPACT_PAYLOADS = "compact-payloads"
# Each person a step reaches has their own frequency cap and quiet hours, which the deliver
# activity judges (it sees every journey's messages to them in the outbox): a step some are
# held back from stays pending until the earliest hold ends, then asks again; those reached
# find their outbox rows. One activity and one timer per hold, never one per person.
PER_PERSON_GUARD_RAILS = "per-person-guard-rails"
# A hold costs no activity: each deliver receipt says when the step's people may next be sent
# to on its channel (their cap window and quiet hours, every journey's messages), the journey
# keeps it and waits for it before a step to them, on the one timer it sets anyway. A hold the
# deliver activity still finds (another journey sent to them meanwhile) holds a step once;
# the next ask sends or records them capped (docs/delivery.md, "Guard rails"). It includes
# PER_PERSON_GUARD_RAILS, so a new journey records one patch (a marker and an upsert), not two.
WAIT_FOR_REACH = "wait-for-reach"
# Every patch above is on in a journey that has this one, which asks none of them: each patch a
# journey asks costs it a marker and a `TemporalChangeVersion` upsert (four of each in every
# new journey before), this one costs one of each. Its scores and its stage after a re-plan go
# to the search attributes in one upsert, not two. Journeys begun without it ask each patch.
PATCHES_FOLDED = "patches-folded"


def _require_argument(command: object, model: type) -> None:
    """A JSON null argument arrives as None, which the handler cannot read: refuse it here, in
    the validator, rather than fail the workflow task in the handler (it would retry forever)."""
    if not isinstance(command, model):
        raise ValueError(f"expected a {model.__name__} object, e.g. {{}}; got {command!r}")


@workflow.defn(name=search_attributes.WORKFLOW_TYPE)
class RetentionJourney:
    @workflow.init
    def __init__(self, request: Any) -> None:
        # Validated here rather than by the converter: a malformed request (e.g. typed into the
        # temporal CLI) then fails the journey naming the field, instead of failing its task
        # forever.
        info = workflow.info()
        self._folded = workflow.patched(PATCHES_FOLDED)
        self._invalid: str | None = None
        try:
            self._request = JourneyRequest.model_validate(request)
        except ValidationError as exc:
            self._invalid = describe_validation_error(exc)
            self._request = JourneyRequest.model_construct(options=JourneyOptions())
        self._state = self._request.carried_state or JourneyState(
            customer_id=(
                info.workflow_id.removeprefix("retention-")
                if self._invalid
                else self._request.target_customer_id
            ),
            customer=self._request.customer,
            journey_key=f"{info.workflow_id}/{info.first_execution_run_id}",
            started_at=workflow.now(),
        )
        self._lock = asyncio.Lock()
        self._events_this_run = 0

    @workflow.run
    async def run(self, request: Any) -> JourneyState:
        """`request` is a JourneyRequest (or its JSON); see __init__ for why it is typed Any."""
        if self._invalid:
            raise ApplicationError(
                f"invalid JourneyRequest: {self._invalid}", type="InvalidInput", non_retryable=True
            )
        if self._request.carried_state is None:
            self._publish()
            await self._assess_and_plan()
        while self._state.outcome is None:
            if self._should_continue_as_new():
                return await self._continue_as_new()
            await self._wait_for_next_moment()
            async with self._lock:
                await self._record_suppressions()  # before any step that it may stop
                await self._act_on_what_is_due()
        return await self._close()

    # ---- customer events -------------------------------------------------------------------

    @workflow.signal(name="customer_event")
    def customer_event(self, raw: Any) -> None:
        """Record every event, accepted or not; an exit event ends the journey."""
        self._receive(raw)

    @workflow.update(name="record_event")
    def record_event(self, raw: Any) -> EventReceipt:
        """`customer_event` for senders that wait for the answer (`send_event`): the validator
        can refuse for the moment, which a signal cannot, so a flood of events gives the run
        the quiet moment it needs to continue as new instead of growing to Temporal's limits."""
        record = self._receive(raw)
        return EventReceipt(accepted=record.accepted, reason=record.reason)

    @record_event.validator
    def _validate_record_event(self, raw: Any) -> None:
        if self._events_this_run >= MAX_EVENTS_PER_RUN or (
            self._state.outcome is None
            and self._should_continue_as_new()
            and not self._lock.locked()  # a step under way: the run cannot continue yet
        ):
            raise ValueError(f"{JOURNEY_ROLLING_OVER}; send the event again shortly")

    def _receive(self, raw: Any) -> EventRecord:
        self._events_this_run += 1
        received = workflow.now()
        events = self._state.events
        try:
            event = CustomerEvent.model_validate(raw)
        except ValidationError as exc:
            rejected = _rejected(raw, received, describe_validation_error(exc))
            events.note(rejected)
            return rejected
        if (
            event.type == "unsubscribed"
            and not self._invalid
            and self._patched(RECORD_UNSUBSCRIBES)
        ):
            # I/O, so the main loop records it (an activity) before it sends anything else;
            # honoured even when the journey has ended.
            self._state.pending_suppressions.append(self._suppression(event))
        if self._state.outcome is not None:
            late = _record(event, received, "journey already closed")
            events.note(late)
            return late
        record = _record(event, received)
        events.note(record, event)
        if self._state.policy is None:  # followed once the first decision is made
            if len(self._state.early_events) < MAX_EARLY_EVENTS:
                self._state.early_events.append(record)
        elif outcome := self._state.policy.outcome_for(event.type):
            self._end(outcome, f"event:{event.type}")
        else:
            follow_campaigns(self._state, event.type, event.data, workflow.now(), self._clock)
        return record

    # ---- operator commands -----------------------------------------------------------------

    @workflow.update
    def pause(self, command: PauseRequest) -> CommandResult:
        self._state.paused = True
        self._state.pause_reason = command.reason or None
        self._set_stage("paused")
        return self._result(f"paused{': ' + command.reason if command.reason else ''}")

    @pause.validator
    def _validate_pause(self, command: PauseRequest) -> None:
        _require_argument(command, PauseRequest)
        self._require_open("pause")
        if self._state.paused:
            raise ValueError("journey is already paused")

    @workflow.update
    def resume(self, command: ResumeRequest) -> CommandResult:
        self._state.paused = False
        self._state.pause_reason = None
        self._settle()
        return self._result("resumed; overdue steps run now")

    @resume.validator
    def _validate_resume(self, command: ResumeRequest) -> None:
        _require_argument(command, ResumeRequest)
        self._require_open("resume")
        if not self._state.paused:
            raise ValueError("journey is not paused, so it cannot be resumed")

    @workflow.update
    def cancel(self, command: CancelRequest) -> CommandResult:
        self._end("cancelled", command.reason)
        return self._result(f"cancelled: {command.reason}")

    @cancel.validator
    def _validate_cancel(self, command: CancelRequest) -> None:
        _require_argument(command, CancelRequest)
        self._require_open("cancel")
        if not command.reason.strip():
            raise ValueError("reason: say why the journey is cancelled")

    @workflow.update
    async def escalate(self, command: EscalateRequest) -> CommandResult:
        async with self._lock:
            before = self._state.strategy
            rescored = await self._assess_and_decide(escalate_from=before)
            self._adopt(
                rescored.decision,
                why=f"escalated: {command.reason or 'operator'}",
                scores=rescored.scores,
            )
            return self._result(f"escalated from {before} to {self._state.strategy}")

    @escalate.validator
    def _validate_escalate(self, command: EscalateRequest) -> None:
        _require_argument(command, EscalateRequest)
        self._require_open("escalate")
        policy, strategy = self._state.policy, self._state.strategy
        if policy is None or strategy is None:
            raise ValueError("journey has no strategy yet; try again once it is planned")
        if strategy == policy.strategy_order[-1]:
            raise ValueError(f"{strategy} is already the most intensive strategy")

    @workflow.query
    def state(self) -> JourneyState:
        return self._state

    def _require_open(self, command: str) -> None:
        if self._state.outcome is not None:
            raise ValueError(f"cannot {command}: journey already ended ({self._state.outcome})")

    def _result(self, message: str) -> CommandResult:
        return CommandResult(
            stage=self._state.stage, strategy=self._state.strategy, message=message
        )

    # ---- the journey -----------------------------------------------------------------------

    async def _assess_and_plan(self) -> None:
        rescored = await self._assess_and_decide()
        # the snapshot before any event: every assessment applies all accepted events to it
        self._state.customer = self._state.customer or rescored.loaded
        decision = rescored.decision
        assert decision.policy is not None  # a journey's first decision carries it
        self._state.policy = decision.policy
        self._adopt(decision, why="initial assessment", scores=rescored.scores)
        self._follow_early_events(decision.policy)
        await self._record("system", "journey_started")
        workflow.logger.info(
            "journey started: %s, tier %s", self._state.strategy, self._state.risk_tier
        )
        _count(
            JOURNEYS_STARTED,
            strategy=self._state.strategy or "-",
            risk_tier=self._state.risk_tier or "-",
        )

    def _follow_early_events(self, policy: JourneyPolicy) -> None:
        """Events that arrived before there was a policy, in order; then any exit among those
        past `MAX_EARLY_EVENTS`, which were counted but not kept."""
        for record in self._state.early_events:
            if outcome := policy.outcome_for(record.type):
                self._end(outcome, f"event:{record.type}")
            else:
                follow_campaigns(self._state, record.type, record.data, workflow.now(), self._clock)
        self._state.early_events = []
        for exit_rule in policy.exits:
            if self._state.events.seen(exit_rule.event):
                self._end(exit_rule.outcome, f"event:{exit_rule.event}")

    async def _wait_for_next_moment(self) -> None:
        """Sleep until the next step, checkpoint or close, waking early on events and commands."""
        while self._state.outcome is None and not self._should_continue_as_new():
            if self._state.pending_suppressions:
                return
            if self._state.paused:
                await workflow.wait_condition(
                    lambda: (
                        not self._state.paused
                        or self._state.outcome is not None
                        or bool(self._state.pending_suppressions)
                    )
                )
                continue
            due = self._next_moment()
            wait = (due - workflow.now()).total_seconds()
            if wait <= 0:
                return
            # an escalation may bring the next moment forward: wake for it (journeys started
            # before this patch keep sleeping until their old next moment)
            wake_early = self._patched(WAKE_FOR_EARLIER_MOMENT)
            try:
                await workflow.wait_condition(
                    lambda: self._interrupted() or (wake_early and self._next_moment() < due),  # noqa: B023
                    timeout=wait,
                )
            except TimeoutError:
                return

    def _interrupted(self) -> bool:
        s = self._state
        return (
            s.paused
            or s.outcome is not None
            or bool(s.pending_suppressions)
            or self._should_continue_as_new()
        )

    def _next_moment(self) -> datetime:
        moments = [self._close_at()]
        if (step := self._state.next_step()) is not None:
            moments.append(step.ready_at)
        if (checkpoint := self._next_checkpoint()) is not None:
            moments.append(self._journey_time(checkpoint))
        return min(moments)

    async def _act_on_what_is_due(self) -> None:
        if self._state.outcome is not None or self._state.paused:
            return
        now = workflow.now()
        self._wait_for_reach(now)
        checkpoint = self._next_checkpoint()
        if checkpoint is not None and self._journey_time(checkpoint) <= now:
            await self._rescore(checkpoint)
        elif (step := self._state.next_step()) is not None and step.ready_at <= now:
            if self._patched(WAIT_FOR_REACH):  # in place of PER_PERSON_GUARD_RAILS
                rails = self._guard_rails(now, last_ask=step.held_once)
                await self._deliver(step, rails, learn_reach=True)
            elif self._patched(PER_PERSON_GUARD_RAILS):
                await self._deliver(step, self._guard_rails(now))
            elif (hold := self._hold(step, now)) is not None:
                step.deferred_until, step.deferred_why = hold.until, hold.why
                self._publish()
            else:
                await self._deliver(step)
        elif self._state.next_step() is None and self._close_at() <= now:
            self._end("completed", "plan ran out")
        self._wait_for_reach(workflow.now())  # a receipt or a new plan: set the next timer by it

    def _wait_for_reach(self, now: datetime) -> None:
        """Hold back each pending step until all its people may be sent to on its channel, as
        the last deliver receipts said (WAIT_FOR_REACH; nothing is known before it)."""
        s = self._state
        s.next_reach = [r for r in s.next_reach if r.at > now]
        if not s.next_reach or s.customer is None:
            return
        known = {(r.channel, r.contact_id): r for r in s.next_reach}
        for step in s.steps:
            if step.status != "pending":
                continue
            channel, people = reached_by(step.step, s.customer)
            waits = [known[(channel, p)] for p in people if (channel, p) in known]
            latest = max(waits, key=lambda r: r.at, default=None)
            if latest is not None and latest.at > step.ready_at:
                step.deferred_until, step.deferred_why = latest.at, latest.why

    def _learn_reach(self, receipt: DeliveryReceipt) -> None:
        """The receipt's word on its people replaces what the journey knew of them: those it
        lists as not free wait until then, the others are free now."""
        known = {(r.channel, r.contact_id): r for r in self._state.next_reach}
        for person in receipt.recipients:
            known.pop((person.channel, person.contact_id), None)
        for reach in receipt.next_reach:
            known[(reach.channel, reach.contact_id)] = reach
        self._state.next_reach = list(known.values())

    async def _rescore(self, checkpoint: float) -> None:
        self._set_stage("rescoring")
        self._state.checkpoints_done.append(checkpoint)
        rescored = await self._assess_and_decide()
        decision, policy = rescored.decision, self._state.policy
        if decision.strategy == self._state.strategy:
            self._note_scores(rescored.scores)
            # the plan stays; a campaign may now apply
            add_campaigns(self._state, decision, workflow.now(), self._clock)
        elif policy and decision.strategy == policy.recovered_strategy:
            self._note_scores(rescored.scores)
            self._end("recovered", f"re-scored at {checkpoint:g}h: {decision.strategy}")
        else:
            self._adopt(
                decision, why=f"re-scored at checkpoint {checkpoint:g}h", scores=rescored.scores
            )
        if self._state.outcome is None:
            self._settle()

    async def _deliver(
        self, step: StepState, guard_rails: GuardRails | None = None, learn_reach: bool = False
    ) -> None:
        self._set_stage("intervening")
        try:
            receipt = await workflow.execute_activity_method(
                DeliverActivities.deliver,
                self._deliver_request(step, guard_rails),
                start_to_close_timeout=DELIVERY_TIMEOUT,
                retry_policy=DELIVERY_RETRY,
                summary=f"{step.step.action} via {step.step.channel} ({step.step.owner})",
            )
            if learn_reach:
                self._learn_reach(receipt)
            if receipt.held_until is not None:  # some wait for their cap or quiet hours
                step.deferred_until, step.deferred_why = receipt.held_until, receipt.held_why
                step.recipients = receipt.recipients
                step.held_once = learn_reach
                self._settle()
                return
            _note_delivery(step, receipt)
        except ActivityError as err:
            step.status, step.note = "skipped", f"not delivered: {_cause(err)}"
        step.done_at = workflow.now()
        self._settle()

    async def _close(self) -> JourneyState:
        await workflow.wait_condition(workflow.all_handlers_finished)
        await self._record_suppressions()
        self._state.finished_at = workflow.now()
        for step in self._state.steps:
            if step.status == "pending":
                step.status, step.note = "skipped", f"journey ended: {self._state.outcome}"
        self._set_stage("closed")
        await self._record("system", "journey_closed")
        workflow.logger.info("journey closed: %s", self._state.outcome)
        _count(JOURNEYS_CLOSED, outcome=outcome_label(self._state.outcome or "-"))
        if self._state.snapshot_kept:
            return self._state.model_copy(update={"customer": None, "policy": None})
        return self._state

    # ---- activities ------------------------------------------------------------------------

    async def _assess_and_decide(self, escalate_from: str | None = None) -> Rescored:
        """Score the customer as now and decide; one activity (journeys that began before
        LEAN_HISTORY keep their two)."""
        generation = self._state.plan_generation + 1
        if not self._patched(LEAN_HISTORY):
            assessment = await self._assess()
            decision = await self._decide(assessment, generation, escalate_from)
            return Rescored(
                scores=JourneyScores.of(assessment),
                decision=decision,
                loaded=assessment.loaded or assessment.customer,
            )
        keep = self._patched(COMPACT_PAYLOADS)
        rescored = await workflow.execute_activity_method(
            RescoreActivities.assess_and_decide,
            RescoreInput(
                assess=self._assess_input(keep_snapshot=keep),
                generation=generation,
                escalate_from=escalate_from,
                journey=self._journey_context(),
                campaigns_started=self._state.campaigns_started,
            ),
            start_to_close_timeout=SCORING_TIMEOUT,
            retry_policy=SCORING_RETRY,
            summary=f"score and decide for {self._state.customer_id}",
        )
        self._state.snapshot_kept = keep
        return rescored

    async def _assess(self) -> Assessment:
        return await workflow.execute_activity_method(
            AssessActivities.assess,
            self._assess_input(),
            start_to_close_timeout=SCORING_TIMEOUT,
            retry_policy=SCORING_RETRY,
            summary=f"score health and churn risk of {self._state.customer_id}",
        )

    def _assess_input(self, keep_snapshot: bool = False) -> AssessInput:
        first = self._state.strategy is None  # no decision yet: an upstream probability wins
        return AssessInput(
            journey_id=workflow.info().workflow_id,
            customer_id=self._state.customer_id,
            customer=None if self._state.snapshot_kept else self._state.customer,
            journey_key=self._state.journey_key if keep_snapshot else None,
            effects=self._state.events.effects,
            elapsed_hours=self._clock.hours_at(workflow.now()),
            upstream_churn_probability=(
                self._request.options.upstream_churn_probability if first else None
            ),
        )

    async def _decide(
        self, assessment: Assessment, generation: int = 1, escalate_from: str | None = None
    ) -> Decision:
        return await workflow.execute_activity_method(
            DecideActivities.decide,
            DecideInput(
                assessment=assessment,
                generation=generation,
                escalate_from=escalate_from,
                journey=self._journey_context(),
            ),
            start_to_close_timeout=SCORING_TIMEOUT,
            retry_policy=SCORING_RETRY,
            summary="choose strategy and plan from the rule set",
        )

    async def _record(self, actor: str, action: str) -> None:
        await workflow.execute_activity_method(
            RecordActivities.record,
            RecordInput(
                workflow_id=workflow.info().workflow_id,
                journey=self._state.as_record(),
                actor=actor,
                action=action,
            ),
            start_to_close_timeout=RECORDING_TIMEOUT,
            summary=f"record {action.replace('_', ' ')}",
        )

    async def _record_suppressions(self) -> None:
        """Put every unsubscribe heard on the suppression list, oldest first."""
        while self._state.pending_suppressions:
            request = self._state.pending_suppressions[0]
            try:
                await workflow.execute_activity_method(
                    DeliverActivities.suppress,
                    request,
                    start_to_close_timeout=RECORDING_TIMEOUT,
                    retry_policy=DELIVERY_RETRY,  # until the database answers: it must be kept
                    summary=f"suppress {request.channel} for {request.customer_id}",
                )
            except ActivityError as err:
                workflow.logger.error("suppression not recorded: %s", _cause(err))
            self._state.pending_suppressions.pop(0)

    def _suppression(self, event: CustomerEvent) -> SuppressRequest:
        request = unsubscribe_request(
            self._state.customer_id,
            event.data,
            source=f"unsubscribed event via {workflow.info().workflow_id}",
        )
        if self._state.customer is not None:
            request.address = address_of(request.channel, self._state.customer)
        return request

    def _deliver_request(
        self, step: StepState, guard_rails: GuardRails | None = None
    ) -> DeliverInput:
        assert self._state.customer is not None  # assessed before any step exists
        return DeliverInput(
            guard_rails=guard_rails,
            journey_id=workflow.info().workflow_id,
            journey_key=self._state.journey_key,
            customer=None if self._state.snapshot_kept else self._state.customer,
            step=step.step,
            strategy=self._state.strategy or "",
            risk_tier=self._state.risk_tier or "",
            churn_probability=self._state.churn_probability or 0.0,
            health_score=self._state.health_score or 0.0,
            risk_factors=self._state.risk_factors,
            held_out=self._state.holdout,
            offer=self._state.offer,
            rules_version=self._state.rules_version,
        )

    def _journey_context(self) -> JourneyContext:
        """What the rules may know about this journey so far (last 7 days in journey time)."""
        s, now = self._state, workflow.now()
        since = now - self._clock.span(7 * 24)
        return JourneyContext(
            strategy=s.strategy,
            stage=s.stage,
            steps_done=sum(step.status == "done" for step in s.steps),
            days_running=self._clock.hours_at(now) / 24,
            plan_generation=s.plan_generation,
            recent_events=s.events.types_since(since),
            logins_last_7d=s.events.seen("login", since),
        )

    # ---- state changes ---------------------------------------------------------------------

    def _adopt(self, decision: Decision, why: str, scores: JourneyScores) -> None:
        """Make `decision` the plan: pending steps of an older plan give way to the new one,
        except a running campaign's, which runs once per journey and keeps its own pace."""
        s = self._state
        now = workflow.now()
        if s.strategy is None:  # held out or not for the whole journey: lift needs that
            s.holdout = decision.holdout
        s.offer = decision.offer or s.offer
        for old in s.steps:
            if old.status == "pending" and old.step.campaign is None:
                old.status, old.note = "skipped", f"replaced by plan {decision.plan.generation}"
        s.strategy_history.append(
            StrategyChange(at=now, from_strategy=s.strategy, to_strategy=decision.strategy, why=why)
        )
        s.strategy, s.risk_tier, s.severity_tier = (
            decision.strategy,
            decision.risk_tier,
            decision.severity_tier,
        )
        s.rules_version, s.fired_rules = decision.rules_version, decision.fired_rules
        s.plan_generation = decision.plan.generation
        s.plan_started_at = now
        own = [step for step in decision.plan.steps if step.campaign is None]
        s.steps += scheduled(own, decision.plan.generation, now, self._clock)
        add_campaigns(s, decision, now, self._clock)
        self._note_scores(scores)
        self._settle()

    def _note_scores(self, scores: JourneyScores) -> None:
        s = self._state
        s.churn_probability, s.probability_source = (
            scores.churn_probability,
            scores.probability_source,
        )
        s.model_version, s.health_score = scores.model_version, scores.health_score
        s.risk_factors = scores.risk_factors
        if not self._folded:  # PATCHES_FOLDED publishes them with the stage that follows
            self._publish()

    def _end(self, outcome: str, reason: str) -> None:
        if self._state.outcome is None:
            self._state.outcome, self._state.exit_reason = outcome, reason

    def _set_stage(self, stage: Stage) -> None:
        self._state.stage = stage
        self._publish()

    def _settle(self) -> None:
        """Back to waiting after work, unless an operator paused the journey meanwhile."""
        self._set_stage("paused" if self._state.paused else "waiting")

    def _publish(self) -> None:
        """Keep the search attributes and the UI's current details in step with the state."""
        updates = _search_attributes(self._state)
        if self._patched(LEAN_HISTORY):
            now = workflow.info().typed_search_attributes
            updates = [
                u
                for u in updates
                if now.get(u.key) != u.value
                and (
                    u.key != search_attributes.JOURNEY_STAGE or self._state.stage in SETTLED_STAGES
                )
            ]
        if updates:
            workflow.upsert_search_attributes(updates)
        workflow.set_current_details(_details(self._state))

    def _patched(self, patch_id: str) -> bool:
        """Whether this journey takes the path `patch_id` guards (PATCHES_FOLDED: all of them).
        Only for the patches PATCHES_FOLDED folds: a later one is asked with `workflow.patched`."""
        return self._folded or workflow.patched(patch_id)

    def _guard_rails(self, now: datetime, last_ask: bool = False) -> GuardRails:
        """What the deliver activity judges each person's hold by (none before a policy)."""
        policy = self._state.policy
        return GuardRails(
            at=now,
            last_ask=last_ask,
            started_at=self._state.started_at,
            time_scale=self._request.options.time_scale,
            frequency_caps=policy.frequency_caps if policy else [],
            quiet_hours=policy.quiet_hours if policy else None,
        )

    def _hold(self, step: StepState, now: datetime) -> Hold | None:
        """Until when a frequency cap or quiet hours hold `step` back (real time), if they do:
        journeys from before PER_PERSON_GUARD_RAILS. Caps count this journey's own deliveries
        on the channel, held-out ones included, so the holdout keeps the treated group's pace."""
        policy, customer = self._state.policy, self._state.customer
        if policy is None or customer is None:
            return None
        if not (policy.frequency_caps or policy.quiet_hours) or not self._patched(GUARD_RAILS):
            return None
        channel = likely_channel(step.step, customer)
        clock = self._clock
        sent = [
            clock.journey(s.done_at)
            for s in self._state.steps
            if s.status == "done" and s.channel_used == channel and s.done_at is not None
        ]
        hold = hold_for(policy, channel, clock.journey(now), sent, customer.profile.timezone)
        if hold is None:
            return None
        # at least a second on: a hold that rounding ended early must not spin the loop
        return Hold(max(clock.real(hold.until), now + timedelta(seconds=1)), hold.why)

    # ---- journey time ----------------------------------------------------------------------

    @property
    def _clock(self) -> JourneyClock:
        return JourneyClock(self._state.started_at, self._request.options.time_scale)

    def _journey_time(self, journey_hours: float) -> datetime:
        return self._state.started_at + self._clock.span(journey_hours)

    def _next_checkpoint(self) -> float | None:
        policy = self._state.policy
        if policy is None:
            return None
        left = [h for h in policy.checkpoint_hours if h not in self._state.checkpoints_done]
        return min(left) if left else None

    def _close_at(self) -> datetime:
        last = max((step.ready_at for step in self._state.steps), default=workflow.now())
        observation = self._state.policy.observation_hours if self._state.policy else 0.0
        return last + self._clock.span(observation)

    # ---- continue-as-new -------------------------------------------------------------------

    def _should_continue_as_new(self) -> bool:
        limit = self._request.options.continue_as_new_after_events
        return self._events_this_run >= limit or workflow.info().is_continue_as_new_suggested()

    async def _continue_as_new(self) -> JourneyState:
        await workflow.wait_condition(workflow.all_handlers_finished)
        self._state.runs += 1
        workflow.continue_as_new(
            JourneyRequest(options=self._request.options, carried_state=self._state)
        )


def _record(event: CustomerEvent, received: datetime, reason: str | None = None) -> EventRecord:
    return EventRecord(
        type=event.type,
        at=event.at,
        data=event.data,
        count=event.count,
        received_at=received,
        accepted=reason is None,
        reason=reason,
    )


def _rejected(raw: Any, received: datetime, reason: str) -> EventRecord:
    kind = raw.get("type") if isinstance(raw, dict) else None
    data = raw.get("data") if isinstance(raw, dict) else None
    return EventRecord(
        type=str(kind) if kind is not None else "(missing)",
        data=data if isinstance(data, dict) else {"payload": repr(raw)[:500]},
        received_at=received,
        accepted=False,
        reason=reason,
    )


def _note_delivery(step: StepState, receipt: DeliveryReceipt) -> None:
    if not receipt.outbox_id:  # held once, and everyone still held: capped, nothing sent
        step.status, step.channel_used = "skipped", receipt.channel
        step.recipients = receipt.recipients
        capped = [r.note for r in receipt.recipients if r.status == "capped" and r.note]
        step.note = "; ".join(capped) or "not sent: everyone capped"
        return
    step.status, step.channel_used, step.outbox_id = "done", receipt.channel, receipt.outbox_id
    step.delivery_mode, step.provider = receipt.mode, receipt.provider
    step.provider_message_id = receipt.provider_message_id
    step.recipients, step.recipients_left_out = receipt.recipients, receipt.recipients_left_out
    step.note = (
        "held out: recorded, nothing sent"
        if receipt.held_out
        else receipt.note or "fallback channel used"
        if receipt.fallback_used
        else ""
    )


def _count(metric: Metric, **labels: str) -> None:
    """Count on the worker's metrics endpoint; the SDK skips it while replaying."""
    workflow.metric_meter().create_counter(metric.name, metric.description).add(1, labels)


def _cause(err: ActivityError) -> str:
    cause = err.cause
    return str(cause.message) if isinstance(cause, ApplicationError) else str(cause or err)


def _search_attributes(s: JourneyState) -> list[SearchAttributeUpdate[Any]]:
    updates: list[SearchAttributeUpdate[Any]] = [
        search_attributes.CUSTOMER_ID.value_set(s.customer_id),
        search_attributes.JOURNEY_STAGE.value_set(s.stage),
    ]
    if s.strategy:
        updates += [
            search_attributes.STRATEGY.value_set(s.strategy),
            search_attributes.RISK_TIER.value_set(s.risk_tier or ""),
        ]
    if s.churn_probability is not None:
        updates.append(search_attributes.CHURN_PROBABILITY.value_set(s.churn_probability))
    if s.health_score is not None:
        updates.append(search_attributes.HEALTH_SCORE.value_set(s.health_score))
    if s.rules_version:
        updates.append(search_attributes.RULES_VERSION.value_set(s.rules_version))
    if s.customer and s.customer.profile.assigned_csm:
        updates.append(search_attributes.ASSIGNED_CSM.value_set(s.customer.profile.assigned_csm))
    return updates


def _details(s: JourneyState) -> str:
    nxt = s.next_step()
    lines = [
        f"**{s.customer_id}** · stage `{s.stage}` · strategy `{s.strategy or '-'}` "
        f"· tier `{s.risk_tier or '-'}` · severity `{s.severity_tier or '-'}`",
        f"churn probability {s.churn_probability if s.churn_probability is not None else '-'} "
        f"· health {s.health_score if s.health_score is not None else '-'}",
        f"next: {nxt.step.action} via {nxt.step.channel} at {nxt.ready_at:%Y-%m-%d %H:%M:%S} UTC"
        if nxt
        else "next: -",
    ]
    if s.holdout:
        lines.append("**holdout**: steps are recorded, nothing is sent")
    if s.offer:
        lines.append(f"offer: {s.offer.type} worth {s.offer.value:,.0f} ({s.offer.name})")
    if s.paused:
        lines.append(f"paused: {s.pause_reason or 'by operator'}")
    if s.outcome:
        lines.append(f"outcome: {s.outcome} ({s.exit_reason})")
    return "\n\n".join(lines)
