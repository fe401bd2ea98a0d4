"""The journey's search attributes: what operators filter journeys by in Temporal UI and the
CLI (docs/operators.md). A workflow upserts them; `journeys list` queries them."""

from __future__ import annotations

from typing import Any

from temporalio.common import SearchAttributeKey

WORKFLOW_TYPE = "RetentionJourney"

CUSTOMER_ID = SearchAttributeKey.for_keyword("CustomerId")
RISK_TIER = SearchAttributeKey.for_keyword("RiskTier")
STRATEGY = SearchAttributeKey.for_keyword("Strategy")
JOURNEY_STAGE = SearchAttributeKey.for_keyword("JourneyStage")
CHURN_PROBABILITY = SearchAttributeKey.for_float("ChurnProbability")
HEALTH_SCORE = SearchAttributeKey.for_float("HealthScore")
ASSIGNED_CSM = SearchAttributeKey.for_keyword("AssignedCsm")
RULES_VERSION = SearchAttributeKey.for_keyword("RulesVersion")

SEARCH_ATTRIBUTES: list[SearchAttributeKey[Any]] = [
    CUSTOMER_ID,
    RISK_TIER,
    STRATEGY,
    JOURNEY_STAGE,
    CHURN_PROBABILITY,
    HEALTH_SCORE,
    ASSIGNED_CSM,
    RULES_VERSION,
]
