"""What the journey workflow names from activities/ and retention/, in one module.

The sandbox imports a workflow's module afresh for every run, and each module that import
names costs the run a pass through the sandbox's importer, on the worker's event loop: through
one module, a journey starts with 1.8 ms less of it (bench/RESULTS.md). The workflow imports
this module passed through, so the modules below are imported once per worker process.
"""

from pydantic import ValidationError

from activities.assess import AssessActivities, AssessInput
from activities.decide import DecideActivities, DecideInput
from activities.deliver import DeliverActivities
from activities.record import RecordActivities, RecordInput
from activities.rescore import RescoreActivities, Rescored, RescoreInput
from retention import search_attributes
from retention.campaigns import add_campaigns, follow_campaigns, scheduled
from retention.customer import CustomerEvent, describe_validation_error
from retention.delivery.audience import reached_by
from retention.delivery.channels import address_of, likely_channel
from retention.delivery.guardrails import Hold, hold_for
from retention.delivery.requests import DeliverInput, DeliveryReceipt, GuardRails
from retention.event_summary import EventRecord
from retention.journey_clock import JourneyClock
from retention.journey_state import (
    JOURNEY_ROLLING_OVER,
    MAX_EARLY_EVENTS,
    MAX_EVENTS_PER_RUN,
    CancelRequest,
    CommandResult,
    EscalateRequest,
    EventReceipt,
    JourneyOptions,
    JourneyRequest,
    JourneyState,
    PauseRequest,
    ResumeRequest,
    Stage,
    StepState,
    StrategyChange,
)
from retention.plan import Decision, JourneyContext, JourneyPolicy
from retention.runtime.metrics import JOURNEYS_CLOSED, JOURNEYS_STARTED, Metric, outcome_label
from retention.scoring.assessment import Assessment, JourneyScores
from retention.suppression import SuppressRequest, unsubscribe_request

__all__ = [
    "add_campaigns",
    "address_of",
    "AssessActivities",
    "AssessInput",
    "Assessment",
    "CancelRequest",
    "CommandResult",
    "CustomerEvent",
    "DecideActivities",
    "DecideInput",
    "Decision",
    "DeliverActivities",
    "DeliverInput",
    "DeliveryReceipt",
    "describe_validation_error",
    "EscalateRequest",
    "EventReceipt",
    "EventRecord",
    "follow_campaigns",
    "GuardRails",
    "Hold",
    "hold_for",
    "JOURNEY_ROLLING_OVER",
    "JourneyClock",
    "JourneyContext",
    "JourneyOptions",
    "JourneyPolicy",
    "JourneyRequest",
    "JOURNEYS_CLOSED",
    "JOURNEYS_STARTED",
    "JourneyScores",
    "JourneyState",
    "likely_channel",
    "MAX_EARLY_EVENTS",
    "MAX_EVENTS_PER_RUN",
    "Metric",
    "outcome_label",
    "PauseRequest",
    "reached_by",
    "RecordActivities",
    "RecordInput",
    "RescoreActivities",
    "Rescored",
    "RescoreInput",
    "ResumeRequest",
    "scheduled",
    "search_attributes",
    "Stage",
    "StepState",
    "StrategyChange",
    "SuppressRequest",
    "unsubscribe_request",
    "ValidationError",
]
