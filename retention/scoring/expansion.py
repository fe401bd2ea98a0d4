"""Expansion opportunities: where a healthy account is outgrowing what it pays for.

Every threshold, probability, timing and value share comes from `rules/expansion.yaml`
(`ExpansionPolicy`). Signals (a limit of 0 means "no limit", so its signal cannot fire):

- user_expansion: active_users / max_users > `above`. Value: the seats needed to bring usage
  back to `target_ratio`, at the contract's price per seat:
  (ceil(active_users / target_ratio) - max_users) x annual_contract_value / max_users.
- storage_expansion: storage_used_gb / storage_limit_gb > `above`. Value: contract x share.
- api_expansion: api_calls_month / api_limit_month > `above`. Value: contract x share.
- feature_upgrade: actions_per_session >= `actions_per_session_at_least` while
  advanced_features_used <= `advanced_features_at_most` (every action is then a basic one).
  Value: contract x share.
- tier_upgrade: active users grew by at least `min_growth` in each of the last `periods`
  periods (active_users_history, then active_users now). Value: contract x share.

expected_value = estimated_value x probability; opportunities come highest expected value first,
ties in the file's order. Money is rounded to cents.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from itertools import pairwise
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from retention.customer import CustomerSnapshot

OpportunityType = Literal[
    "user_expansion", "storage_expansion", "api_expansion", "feature_upgrade", "tier_upgrade"
]
Ratio = Annotated[float, Field(gt=0, le=1)]
# A share of the annual contract; up to 5x, for upgrades worth more than today's contract.
ContractShare = Annotated[float, Field(ge=0, le=5)]


class ExpansionOpportunity(BaseModel):
    type: OpportunityType
    trigger: str = Field(description="what fired, with the numbers")
    estimated_value: float = Field(ge=0, description="money per year")
    probability: float = Field(ge=0, le=1)
    timing: str
    expected_value: float = Field(ge=0, description="estimated_value x probability")


# ---- the policy: rules/expansion.yaml --------------------------------------------------------


class _Signal(BaseModel):
    model_config = ConfigDict(extra="forbid")

    probability: float = Field(ge=0, le=1)
    timing: str = Field(pattern=r"^[a-z][a-z0-9_]*$")


class _ContractShareSignal(_Signal):
    contract_share: ContractShare


class UserExpansion(_Signal):
    above: Ratio
    target_ratio: Ratio

    @field_validator("target_ratio")
    @classmethod
    def _below_trigger(cls, target: float, info: ValidationInfo) -> float:
        above = info.data.get("above")
        if above is not None and target > above:
            raise ValueError(f"must not exceed above ({above}): the value would be negative")
        return target


class LimitSignal(_ContractShareSignal):
    above: Ratio


class FeatureUpgrade(_ContractShareSignal):
    actions_per_session_at_least: float = Field(gt=0)
    advanced_features_at_most: int = Field(ge=0)


class TierUpgrade(_ContractShareSignal):
    periods: int = Field(ge=1, le=36)
    min_growth: float = Field(gt=0, le=10, description="0.05 = 5% more users each period")


class ExpansionPolicy(BaseModel):
    """`rules/expansion.yaml`; the key order is the tie-break order."""

    model_config = ConfigDict(extra="forbid")

    user_expansion: UserExpansion
    storage_expansion: LimitSignal
    api_expansion: LimitSignal
    feature_upgrade: FeatureUpgrade
    tier_upgrade: TierUpgrade


# ---- the signals -----------------------------------------------------------------------------


def _opportunity(
    kind: OpportunityType, signal: _Signal, trigger: str, value: float
) -> ExpansionOpportunity:
    return ExpansionOpportunity(
        type=kind,
        trigger=trigger,
        estimated_value=round(value, 2),
        probability=signal.probability,
        timing=signal.timing,
        expected_value=round(value * signal.probability, 2),
    )


def _percent(ratio: float) -> str:
    """0.901 → "90.1%", 0.8 → "80%": enough digits to see why a line was crossed."""
    return f"{ratio * 100:.4g}%"


def _over_limit(used: float, limit: float, above: float) -> float | None:
    """used / limit when it is above the line; None without a limit."""
    if limit <= 0:
        return None
    ratio = used / limit
    return ratio if round(ratio, 9) > above else None


def _user_expansion(
    snapshot: CustomerSnapshot, policy: ExpansionPolicy
) -> ExpansionOpportunity | None:
    usage, signal = snapshot.usage, policy.user_expansion
    ratio = _over_limit(usage.active_users, usage.max_users, signal.above)
    if ratio is None:
        return None
    seats = math.ceil(round(usage.active_users / signal.target_ratio, 9)) - usage.max_users
    per_seat = snapshot.financial.annual_contract_value / usage.max_users
    trigger = (
        f"{usage.active_users} of {usage.max_users} seats in use ({_percent(ratio)} > "
        f"{_percent(signal.above)}); {seats} more bring it to {_percent(signal.target_ratio)}"
    )
    return _opportunity("user_expansion", signal, trigger, seats * per_seat)


def _limit_expansion(
    kind: OpportunityType,
    signal: LimitSignal,
    snapshot: CustomerSnapshot,
    used: float,
    limit: float,
    what: str,
) -> ExpansionOpportunity | None:
    """A metered limit (storage, API calls) used beyond the signal's line."""
    ratio = _over_limit(used, limit, signal.above)
    if ratio is None:
        return None
    trigger = f"{used:,.15g} of {limit:,.15g} {what} ({_percent(ratio)} > {_percent(signal.above)})"
    return _share_of_contract(kind, signal, trigger, snapshot)


def _storage_expansion(
    snapshot: CustomerSnapshot, policy: ExpansionPolicy
) -> ExpansionOpportunity | None:
    usage, signal = snapshot.usage, policy.storage_expansion
    used, limit = usage.storage_used_gb, usage.storage_limit_gb
    return _limit_expansion("storage_expansion", signal, snapshot, used, limit, "GB storage used")


def _api_expansion(
    snapshot: CustomerSnapshot, policy: ExpansionPolicy
) -> ExpansionOpportunity | None:
    usage, signal = snapshot.usage, policy.api_expansion
    used, limit = usage.api_calls_month, usage.api_limit_month
    return _limit_expansion("api_expansion", signal, snapshot, used, limit, "API calls this month")


def _feature_upgrade(
    snapshot: CustomerSnapshot, policy: ExpansionPolicy
) -> ExpansionOpportunity | None:
    usage, signal = snapshot.usage, policy.feature_upgrade
    heavy = usage.actions_per_session >= signal.actions_per_session_at_least
    if not heavy or usage.advanced_features_used > signal.advanced_features_at_most:
        return None
    trigger = (
        f"{usage.actions_per_session:g} actions per session (>= "
        f"{signal.actions_per_session_at_least:g}) with {usage.advanced_features_used} "
        f"advanced feature(s) in use (<= {signal.advanced_features_at_most})"
    )
    return _share_of_contract("feature_upgrade", signal, trigger, snapshot)


def _tier_upgrade(
    snapshot: CustomerSnapshot, policy: ExpansionPolicy
) -> ExpansionOpportunity | None:
    usage, signal = snapshot.usage, policy.tier_upgrade
    series = [*usage.active_users_history, usage.active_users][-(signal.periods + 1) :]
    if len(series) <= signal.periods:
        return None
    grew = all(
        before > 0 and round(now / before - 1, 9) >= signal.min_growth
        for before, now in pairwise(series)
    )
    if not grew:
        return None
    trigger = (
        f"active users grew at least {_percent(signal.min_growth)} in each of the last "
        f"{signal.periods} periods ({' -> '.join(map(str, series))})"
    )
    return _share_of_contract("tier_upgrade", signal, trigger, snapshot)


def _share_of_contract(
    kind: OpportunityType, signal: _ContractShareSignal, trigger: str, snapshot: CustomerSnapshot
) -> ExpansionOpportunity:
    value = snapshot.financial.annual_contract_value * signal.contract_share
    return _opportunity(kind, signal, trigger, value)


# In the file's order, which breaks ties in expected value.
SIGNALS: tuple[Callable[[CustomerSnapshot, ExpansionPolicy], ExpansionOpportunity | None], ...] = (
    _user_expansion,
    _storage_expansion,
    _api_expansion,
    _feature_upgrade,
    _tier_upgrade,
)


def expansion_opportunities(
    snapshot: CustomerSnapshot, policy: ExpansionPolicy
) -> list[ExpansionOpportunity]:
    """Every signal that fires for this customer, highest expected value first."""
    found = [o for signal in SIGNALS if (o := signal(snapshot, policy)) is not None]
    return sorted(found, key=lambda o: o.expected_value, reverse=True)  # stable: ties keep order
