"""A seeded generator of customer populations with ground-truth churn and churn dates.

The same seed gives the same population, byte for byte. Every number that shapes it is a named
constant below. The generative process, per customer (N(m, s) is a normal draw, σ(x) the
logistic function 1 / (1 + e^-x), Poisson and Binomial as usual):

1. Account. segment smb / mid_market / enterprise (SEGMENT_SHARES); plan by segment
   (PLAN_SHARES); licensed seats lognormal around SEATS_MEDIAN[segment] (sd SEATS_SIGMA);
   tenure TENURE_MIN_DAYS + Exponential(TENURE_MEAN_DAYS), signup date unknown for
   SIGNUP_UNKNOWN_SHARE; a discount for DISCOUNT_SHARE of accounts (DISCOUNT_STEPS);
   annual contract value = seats x PRICE_PER_SEAT[plan] x (1 - discount) x lognormal noise.
2. Latent account health h drifts monthly over HISTORY_MONTHS months up to the snapshot:
   h_0 ~ N(0, 1); each account has its own drift mu ~ N(0, DRIFT_SD);
   h_t = h_{t-1} + mu + N(0, STEP_SD). h = h_now drives almost everything observed.
   Two more latent drivers: support friction f ~ N(0, 1) (bugs, integration pain), leaning
   towards unhealthy accounts by FRICTION_HEALTH_LEAN, and financial stress s ~ N(0, 1).
3. Usage decay. Weekly logins one quarter ago LOGINS_BASE x exp(LOGIN_HEALTH h_(now-3) +
   noise); now that figure x exp(LOGIN_HEALTH (h_now - h_(now-3)) + noise), so falling health
   shows as usage decline. Days since the last login ~ Exponential with mean
   exp(INACTIVE_LOG_MEAN - INACTIVE_HEALTH h). Features used ~ Binomial(features of the plan,
   σ(ADOPTION_BASE + ADOPTION_HEALTH h + noise)); actions per session lognormal.
4. Growth and plan limits. Monthly user growth g = GROWTH_BASE + GROWTH_HEALTH h + N(0,
   GROWTH_SD); active users start at a health-driven share of the seats and grow by g each
   month (capped at SEAT_OVERUSE_CAP x seats); storage and API use fill the plan's limits
   (STORAGE_LIMIT_GB, API_LIMIT_MONTH; 0 = none) faster with growth. Growth brings expansion
   revenue with probability σ(EXPANSION_BASE + EXPANSION_GROWTH g).
5. Engagement: email open rate σ(OPEN_BASE + OPEN_HEALTH h + noise); webinars and downloads
   Poisson with health-driven rates.
6. Support: tickets in 90 days ~ Poisson(exp(TICKETS_BASE + TICKETS_FRICTION f) x seats
   factor); their average sentiment tanh(SENTIMENT_HEALTH h - SENTIMENT_FRICTION f + noise)
   (0 without tickets); a CSAT answer sometimes. No `support.interactions` texts.
7. Payment failures: delays in 90 days ~ Poisson(exp(DELAY_BASE + DELAY_STRESS s -
   DELAY_HEALTH h)).
8. Champion loss: the champion left with probability σ(CHAMPION_LEFT_BASE - CHAMPION_HEALTH h),
   else is at risk with σ(CHAMPION_AT_RISK_BASE - CHAMPION_HEALTH h); small accounts have none
   with NO_CHAMPION_SHARE. NPS answered with NPS_ANSWER_SHARE, about NPS_MEAN + NPS_HEALTH h.
9. Health history: the last HEALTH_HISTORY_MONTHS monthly scores (fewer for young accounts),
   HISTORY_CENTER + HISTORY_SCALE x h_t + noise, on the health score's 0-100 scale.
10. Churn. The probability of churning within HORIZON_DAYS of the snapshot is logistic in the
    latent drivers and in what the customer does, with the threshold and interaction effects
    churn shows in practice (and a linear model cannot fit):
        logit p = HAZARD_BASE + HAZARD_HEALTH h + HAZARD_DRIFT mu / DRIFT_SD
                  + HAZARD_FRICTION f
                  + HAZARD_PAYMENT (PAYMENT_COMPOUNDING^min(delays, 3) - 1)   [failures compound]
                  + HAZARD_LOW_USAGE [weekly logins < LOW_USAGE_LOGINS]        [no habit formed]
                  + HAZARD_CHAMPION_LEFT [left] + HAZARD_CHAMPION_AT_RISK [at risk]
                  + HAZARD_CHAMPION_LEFT_LOW_USAGE [left and low usage]   [nobody else uses it]
                  + HAZARD_UNDERUSE [active users < UNDERUSE_BELOW x seats]
                  + HAZARD_DORMANT [days since the last login > DORMANT_AFTER_DAYS]
                  + HAZARD_USAGE_CLIFF [cliff: weekly logins fell by more than USAGE_CLIFF]
                  + HAZARD_CLIFF_AND_ANGRY [cliff and ticket sentiment < ANGRY_BELOW]
                  + HAZARD_GROWTH g / GROWTH_SD + HAZARD_NEW [tenure < NEW_ACCOUNT_DAYS]
                  + HAZARD_DISCOUNT discount (0-1) + HAZARD_SEGMENT[segment]
                  + frailty, frailty ~ N(0, FRAILTY_SD)
    (the frailty is what no snapshot shows, so no model can be perfect). churned ~
    Bernoulli(p), about BASE_CHURN_BAND of accounts. A churned account's churn day is drawn
    from a constant hazard lambda = -ln(1 - p) / HORIZON_DAYS conditioned on churning within
    the horizon: t = -ln(1 - U p) / lambda, U ~ Uniform(0, 1), so riskier accounts churn
    sooner; churn_date = snapshot_date + max(1, ceil(t)) days.

Each customer is validated as a `CustomerSnapshot`: ids `gen-000001`, ..., names from small
lists, emails `@example.com`. No contacts unless asked for (`contacts=N`: N people per account,
with roles, from a random stream of their own; retention/model/people.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import numpy as np
from numpy.typing import NDArray

from retention.customer import CustomerSnapshot
from retention.model.people import (
    FIRST_NAMES,
    LAST_NAMES,
    TIMEZONES,
    account_contacts,
    draw_contacts,
)
from retention.model.training_data import TrainingSet

Floats = NDArray[np.float64]
Ints = NDArray[np.int64]

DEFAULT_SNAPSHOT_DATE = date(2026, 1, 1)
HORIZON_DAYS = 180
BASE_CHURN_BAND = (0.15, 0.25)  # the share of churned accounts for any seed, on thousands

# 1. Account
SEGMENTS = ("smb", "mid_market", "enterprise")
SEGMENT_SHARES = (0.55, 0.30, 0.15)
PLANS = ("starter", "professional", "enterprise")
PLAN_SHARES = {  # by segment, over PLANS
    "smb": (0.60, 0.40, 0.00),
    "mid_market": (0.10, 0.65, 0.25),
    "enterprise": (0.00, 0.30, 0.70),
}
PLAN_FEATURES = (10, 20, 30)  # total features of each plan
PLAN_ADVANCED_SHARE = (0.0, 0.3, 0.4)  # of the features used, at most this share is advanced
PRICE_PER_SEAT = (240.0, 480.0, 900.0)  # per year
STORAGE_LIMIT_GB = (50.0, 500.0, 0.0)
API_LIMIT_MONTH = (10_000, 100_000, 0)
SEATS_MEDIAN = (8.0, 40.0, 200.0)  # by segment
SEATS_SIGMA = 0.5
CONTRACT_NOISE_SIGMA = 0.15
TENURE_MIN_DAYS = 14
TENURE_MEAN_DAYS = 700.0
SIGNUP_UNKNOWN_SHARE = 0.05
DISCOUNT_SHARE = 0.35
DISCOUNT_STEPS = (5.0, 10.0, 15.0, 20.0, 25.0, 30.0)
ONBOARDING_DAYS = 90
ONBOARDING_UNTRACKED_SHARE = 0.3

# 2. Latent drivers
HISTORY_MONTHS = 6
DRIFT_SD = 0.15
STEP_SD = 0.12
FRICTION_HEALTH_LEAN = 0.3

# 3. Usage
LOGINS_BASE = 4.0
LOGIN_HEALTH = 0.35
LOGIN_NOISE_SD = 0.25
INACTIVE_LOG_MEAN = 1.6
INACTIVE_HEALTH = 0.9
INACTIVE_MAX_DAYS = 365
ADOPTION_BASE = -0.2
ADOPTION_HEALTH = 0.8
DEPTH_MEDIAN = 10.0
DEPTH_HEALTH = 0.3

# 4. Growth and limits
GROWTH_BASE = 0.01
GROWTH_HEALTH = 0.02
GROWTH_SD = 0.03
SEAT_OVERUSE_CAP = 1.1
UTILIZATION_BASE = 0.8
EXPANSION_BASE = -2.0
EXPANSION_GROWTH = 30.0
UNLIMITED_STORAGE_MEDIAN_GB = 800.0
UNLIMITED_API_MEDIAN = 300_000

# 5. Engagement
OPEN_BASE = -0.6
OPEN_HEALTH = 0.5
WEBINAR_LOG_RATE = -0.8
RESOURCE_LOG_RATE = 0.3
ENGAGEMENT_HEALTH = 0.4

# 6. Support
TICKETS_BASE = 0.4
TICKETS_FRICTION = 0.5
SENTIMENT_BASE = 0.2
SENTIMENT_HEALTH = 0.35
SENTIMENT_FRICTION = 0.5
CSAT_ANSWER_SHARE = 0.6
CSAT_MEAN = 3.6

# 7. Payments
DELAY_BASE = -1.6
DELAY_STRESS = 0.8
DELAY_HEALTH = 0.3

# 8. Relationship
NO_CHAMPION_SHARE = 0.15  # of smb accounts
CHAMPION_LEFT_BASE = -3.0
CHAMPION_AT_RISK_BASE = -2.2
CHAMPION_HEALTH = 0.5
EXECUTIVE_BASE = -0.5
EXECUTIVE_SEGMENT = (0.0, 0.4, 1.0)
NPS_ANSWER_SHARE = 0.55
NPS_MEAN = 7.0
NPS_HEALTH = 1.5

# 9. Health history
HEALTH_HISTORY_MONTHS = 3
HISTORY_CENTER = 56.6
HISTORY_SCALE = 8.2
HISTORY_NOISE_SD = 3.0

# 10. Churn
HAZARD_BASE = -3.8
HAZARD_HEALTH = -0.1
HAZARD_DRIFT = -0.3
HAZARD_FRICTION = 0.2
HAZARD_PAYMENT = 0.45
PAYMENT_COMPOUNDING = 2.0
PAYMENT_DELAYS_CAP = 3
HAZARD_CHAMPION_LEFT = 1.2
HAZARD_CHAMPION_LEFT_LOW_USAGE = 2.0
HAZARD_LOW_USAGE = 2.0
LOW_USAGE_LOGINS = 2.0
HAZARD_CHAMPION_AT_RISK = 0.5
HAZARD_UNDERUSE = 0.5
HAZARD_DORMANT = 2.5
HAZARD_USAGE_CLIFF = 0.3
HAZARD_CLIFF_AND_ANGRY = 2.5
ANGRY_BELOW = -0.3
USAGE_CLIFF = 0.3  # weekly logins fell by more than this share
DORMANT_AFTER_DAYS = 30
UNDERUSE_BELOW = 0.3
HAZARD_GROWTH = -0.2
HAZARD_NEW = 0.8
NEW_ACCOUNT_DAYS = 180
HAZARD_DISCOUNT = 2.0
HAZARD_SEGMENT = (0.3, 0.0, -0.3)  # small accounts leave more easily
FRAILTY_SD = 0.8

COMPANY_WORDS = (
    "Acorn", "Beacon", "Cobalt", "Delta", "Ember", "Falcon", "Granite", "Harbor", "Iris",
    "Juniper", "Kestrel", "Lumen", "Maple", "Nimbus", "Orbit", "Pioneer", "Quartz", "Summit",
)  # fmt: skip
COMPANY_SUFFIXES = ("Labs", "Systems", "Analytics", "Logistics", "Health", "Retail", "Works")
CSMS = ("csm-jordan", "csm-sam", "csm-alex", "csm-robin", "csm-kai")
PHONE_SHARE = 0.3
PROGRESS_EVERY = 1_000


CHAMPION_STATUSES = ("active", "at_risk", "left", "none")


def generate_population(
    customers: int,
    seed: int,
    snapshot_date: date = DEFAULT_SNAPSHOT_DATE,
    progress: Callable[[int], None] | None = None,
    contacts: int = 0,
) -> TrainingSet:
    """`customers` validated snapshots with their outcome; `progress(done)` now and then.
    `contacts`: how many people each account lists (retention/model/people.py; none by default)."""
    if customers < 0 or contacts < 0:
        raise ValueError("customers and contacts must be 0 or more")
    columns = {name: values.tolist() for name, values in draw(seed, customers).items()}
    people = {k: v.tolist() for k, v in draw_contacts(seed, customers, contacts).items()}
    snapshots, churn_dates = [], []
    for i in range(customers):
        row = {name: values[i] for name, values in columns.items()}
        document = _document(i, row, snapshot_date)
        if contacts:
            drawn = {name: values[i] for name, values in people.items()}
            status = document["relationship"]["champion_status"]
            document["contacts"] = account_contacts(i + 1, document["profile"], status, drawn)
        snapshots.append(CustomerSnapshot.model_validate(document))
        days = row["churn_days"]
        churn_dates.append(snapshot_date + timedelta(days=days) if days > 0 else None)
        if progress and (i + 1) % PROGRESS_EVERY == 0:
            progress(i + 1)
    if progress:
        progress(customers)
    return TrainingSet(
        customers=snapshots,
        snapshot_dates=[snapshot_date] * customers,
        churned=[day is not None for day in churn_dates],
        churn_dates=churn_dates,
    )


# ---- the draws, vectorised: one array per figure, customer by customer -------------------------

Draws = dict[str, NDArray[Any]]


def sigmoid(x: Floats) -> Floats:
    return np.asarray(1 / (1 + np.exp(-x)), dtype=np.float64)


def draw(seed: int, n: int) -> Draws:
    """Every random figure of `n` customers, latent drivers included (numbers in the docstring)."""
    rng = np.random.default_rng(seed)
    out: Draws = {}
    _account(rng, n, out)
    path, drift = _latent_health(rng, n)
    h = out["health"] = path[:, -1]
    lean = FRICTION_HEALTH_LEAN
    friction = -lean * h + math.sqrt(1 - lean**2) * rng.normal(size=n)
    stress = rng.normal(size=n)
    _usage(rng, out, path)
    growth = _growth(rng, out, h)
    _engagement(rng, out, h)
    _support(rng, out, h, friction)
    out["payment_delays"] = rng.poisson(
        np.exp(DELAY_BASE + DELAY_STRESS * stress - DELAY_HEALTH * h)
    )
    _relationship(rng, out, h)
    _history(rng, out, path)
    logit = _churn_logit(out, h, drift, friction, growth) + rng.normal(0, FRAILTY_SD, n)
    out["churn_probability"] = sigmoid(logit)
    out["churn_days"] = _churn_days(rng, out["churn_probability"])
    return out


def _churn_logit(out: Draws, h: Floats, drift: Floats, friction: Floats, growth: Floats) -> Floats:
    """The observable part of the churn logit (step 10 of the docstring), frailty aside."""
    left = out["champion"] == CHAMPION_STATUSES.index("left")
    low_usage = out["logins"] < LOW_USAGE_LOGINS
    delays = np.minimum(out["payment_delays"], PAYMENT_DELAYS_CAP)
    cliff = out["logins"] < (1 - USAGE_CLIFF) * out["logins_prior"]
    return np.asarray(
        HAZARD_BASE
        + HAZARD_HEALTH * h
        + HAZARD_DRIFT * drift / DRIFT_SD
        + HAZARD_FRICTION * friction
        + HAZARD_PAYMENT * (PAYMENT_COMPOUNDING**delays - 1)
        + HAZARD_LOW_USAGE * low_usage
        + HAZARD_CHAMPION_LEFT * left
        + HAZARD_CHAMPION_LEFT_LOW_USAGE * (left & low_usage)
        + HAZARD_CHAMPION_AT_RISK * (out["champion"] == CHAMPION_STATUSES.index("at_risk"))
        + HAZARD_UNDERUSE * (out["active_users"] < UNDERUSE_BELOW * out["seats"])
        + HAZARD_DORMANT * (out["inactive_days"] > DORMANT_AFTER_DAYS)
        + HAZARD_USAGE_CLIFF * cliff
        + HAZARD_CLIFF_AND_ANGRY * (cliff & (out["sentiment"] < ANGRY_BELOW))
        + HAZARD_GROWTH * growth / GROWTH_SD
        + HAZARD_NEW * (out["tenure"] < NEW_ACCOUNT_DAYS)
        + HAZARD_DISCOUNT * out["discount"] / 100
        + np.array(HAZARD_SEGMENT)[out["segment"]],
        dtype=np.float64,
    )


def _account(rng: np.random.Generator, n: int, out: Draws) -> None:
    segment = rng.choice(len(SEGMENTS), size=n, p=SEGMENT_SHARES)
    plan_shares = np.array([PLAN_SHARES[name] for name in SEGMENTS])[segment]
    plan = (rng.random(n)[:, None] > np.cumsum(plan_shares, axis=1)).sum(axis=1)
    seats = np.maximum(
        1, np.round(np.array(SEATS_MEDIAN)[segment] * rng.lognormal(0, SEATS_SIGMA, n))
    )
    discounted = rng.random(n) < DISCOUNT_SHARE
    discount = np.where(discounted, rng.choice(DISCOUNT_STEPS, size=n), 0.0)
    list_price = seats * np.array(PRICE_PER_SEAT)[plan] * rng.lognormal(0, CONTRACT_NOISE_SIGMA, n)
    tenure = TENURE_MIN_DAYS + np.floor(rng.exponential(TENURE_MEAN_DAYS, n)).astype(np.int64)
    onboarding = np.minimum(100.0, 100 * tenure / ONBOARDING_DAYS * rng.uniform(0.6, 1.2, n))
    untracked = rng.random(n) < ONBOARDING_UNTRACKED_SHARE
    out.update(
        segment=segment,
        plan=plan,
        seats=seats.astype(np.int64),
        discount=discount,
        contract=np.round(list_price * (1 - discount / 100), -1),
        tenure=tenure,
        signup_known=rng.random(n) >= SIGNUP_UNKNOWN_SHARE,
        onboarding=np.where(untracked, np.nan, np.round(onboarding, 1)),
        first=rng.integers(len(FIRST_NAMES), size=n),
        last=rng.integers(len(LAST_NAMES), size=n),
        word=rng.integers(len(COMPANY_WORDS), size=n),
        suffix=rng.integers(len(COMPANY_SUFFIXES), size=n),
        timezone=rng.integers(len(TIMEZONES), size=n),
        csm=np.where(segment > 0, rng.integers(len(CSMS), size=n), -1),  # smb: pooled, none
        phone=np.where(rng.random(n) < PHONE_SHARE, rng.integers(10**6, size=n), -1),
    )


def _latent_health(rng: np.random.Generator, n: int) -> tuple[Floats, Floats]:
    """Monthly latent health, months 0..HISTORY_MONTHS (the last is now), and each drift."""
    drift = rng.normal(0, DRIFT_SD, n)
    steps = drift[:, None] + rng.normal(0, STEP_SD, (n, HISTORY_MONTHS))
    start = rng.normal(size=(n, 1))
    return np.hstack([start, start + np.cumsum(steps, axis=1)]), drift


def _usage(rng: np.random.Generator, out: Draws, path: Floats) -> None:
    n, h, quarter_ago = len(path), path[:, -1], path[:, -4]
    prior = LOGINS_BASE * np.exp(LOGIN_HEALTH * quarter_ago + rng.normal(0, LOGIN_NOISE_SD, n))
    now = prior * np.exp(LOGIN_HEALTH * (h - quarter_ago) + rng.normal(0, LOGIN_NOISE_SD, n))
    inactive = rng.exponential(np.exp(INACTIVE_LOG_MEAN - INACTIVE_HEALTH * h))
    total = np.array(PLAN_FEATURES)[out["plan"]]
    used = rng.binomial(total, sigmoid(ADOPTION_BASE + ADOPTION_HEALTH * h + rng.normal(0, 0.5, n)))
    advanced = rng.binomial(used, np.array(PLAN_ADVANCED_SHARE)[out["plan"]] * sigmoid(h))
    depth = DEPTH_MEDIAN * np.exp(DEPTH_HEALTH * h) * rng.lognormal(0, 0.4, n)
    out.update(
        logins=np.round(now, 1),
        logins_prior=np.round(prior, 1),
        inactive_days=np.minimum(np.floor(inactive), INACTIVE_MAX_DAYS).astype(np.int64),
        total_features=total,
        features_used=used,
        advanced_used=advanced,
        depth=np.round(depth, 1),
    )


def _growth(rng: np.random.Generator, out: Draws, h: Floats) -> Floats:
    """Monthly user growth; active users over the months, storage and API use against limits."""
    n, seats = len(h), out["seats"]
    growth = GROWTH_BASE + GROWTH_HEALTH * h + rng.normal(0, GROWTH_SD, n)
    start = seats * sigmoid(UTILIZATION_BASE + 0.6 * h + rng.normal(0, 0.5, n))
    monthly = growth[:, None] + rng.normal(0, 0.04, (n, HISTORY_MONTHS))
    users = start[:, None] * np.exp(np.cumsum(monthly, axis=1))
    users = np.round(np.minimum(users, SEAT_OVERUSE_CAP * seats[:, None])).astype(np.int64)
    months_known = np.minimum(HISTORY_MONTHS - 1, out["tenure"] // 30)
    storage_limit = np.array(STORAGE_LIMIT_GB)[out["plan"]]
    api_limit = np.array(API_LIMIT_MONTH)[out["plan"]]
    storage_fill = sigmoid(rng.normal(-0.3, 1.0, n) + 10 * growth)
    api_fill = sigmoid(rng.normal(-0.6, 1.0, n) + 10 * growth)
    expanded = rng.random(n) < sigmoid(EXPANSION_BASE + EXPANSION_GROWTH * growth)
    out.update(
        active_users=users[:, -1],
        users_history=users[:, :-1],
        users_months=months_known,
        storage_used=np.round(
            np.where(storage_limit > 0, storage_limit, UNLIMITED_STORAGE_MEDIAN_GB) * storage_fill,
            1,
        ),
        storage_limit=storage_limit,
        api_calls=np.round(
            np.where(api_limit > 0, api_limit, UNLIMITED_API_MEDIAN) * api_fill
        ).astype(np.int64),
        api_limit=api_limit,
        expansion_revenue=np.where(
            expanded, np.round(out["contract"] * rng.uniform(0.05, 0.3, n), -1), 0.0
        ),
    )
    return growth


def _engagement(rng: np.random.Generator, out: Draws, h: Floats) -> None:
    n = len(h)
    out.update(
        open_rate=np.round(sigmoid(OPEN_BASE + OPEN_HEALTH * h + rng.normal(0, 0.6, n)), 3),
        webinars=rng.poisson(np.exp(WEBINAR_LOG_RATE + ENGAGEMENT_HEALTH * h)),
        resources=rng.poisson(np.exp(RESOURCE_LOG_RATE + ENGAGEMENT_HEALTH * h)),
    )


def _support(rng: np.random.Generator, out: Draws, h: Floats, friction: Floats) -> None:
    n = len(h)
    seats_factor = np.sqrt(out["seats"] / SEATS_MEDIAN[0])  # bigger accounts ask more
    tickets = rng.poisson(np.exp(TICKETS_BASE + TICKETS_FRICTION * friction) * seats_factor)
    mood = SENTIMENT_BASE + SENTIMENT_HEALTH * h - SENTIMENT_FRICTION * friction
    sentiment = np.tanh(mood + rng.normal(0, 0.3, n))
    csat = np.clip(CSAT_MEAN + 0.5 * h - 0.5 * friction + rng.normal(0, 0.6, n), 1, 5)
    answered = (tickets > 0) & (rng.random(n) < CSAT_ANSWER_SHARE)
    out.update(
        tickets=tickets,
        sentiment=np.where(tickets > 0, np.round(sentiment, 3), 0.0),
        csat=np.where(answered, np.round(csat, 1), np.nan),
    )


def _relationship(rng: np.random.Generator, out: Draws, h: Floats) -> None:
    n = len(h)
    left = rng.random(n) < sigmoid(CHAMPION_LEFT_BASE - CHAMPION_HEALTH * h)
    at_risk = rng.random(n) < sigmoid(CHAMPION_AT_RISK_BASE - CHAMPION_HEALTH * h)
    none = (out["segment"] == 0) & (rng.random(n) < NO_CHAMPION_SHARE)
    champion = np.select([none, left, at_risk], [3, 2, 1], default=0)
    nps = np.clip(np.round(NPS_MEAN + NPS_HEALTH * h + rng.normal(0, 1.5, n)), 0, 10)
    executive = EXECUTIVE_BASE + np.array(EXECUTIVE_SEGMENT)[out["segment"]] + 0.6 * h
    out.update(
        champion=champion,
        nps=np.where(rng.random(n) < NPS_ANSWER_SHARE, nps, -1).astype(np.int64),
        executive=rng.random(n) < sigmoid(executive),
    )


def _history(rng: np.random.Generator, out: Draws, path: Floats) -> None:
    months = path[:, -1 - HEALTH_HISTORY_MONTHS : -1]
    noise = rng.normal(0, HISTORY_NOISE_SD, months.shape)
    out["history"] = np.round(np.clip(HISTORY_CENTER + HISTORY_SCALE * months + noise, 0, 100), 1)
    out["history_months"] = np.minimum(HEALTH_HISTORY_MONTHS, out["tenure"] // 30)


def _churn_days(rng: np.random.Generator, probability: Floats) -> Ints:
    """Days to churn (1..HORIZON_DAYS), 0 for a customer who stays (see the docstring)."""
    n = len(probability)
    churned = rng.random(n) < probability
    rate = -np.log1p(-probability) / HORIZON_DAYS
    t = -np.log1p(-rng.random(n) * probability) / rate
    days = np.clip(np.ceil(t), 1, HORIZON_DAYS).astype(np.int64)
    return np.where(churned, days, 0)


# ---- one customer's snapshot document -----------------------------------------------------------


def _document(i: int, row: dict[str, Any], snapshot_date: date) -> dict[str, Any]:
    first, last = FIRST_NAMES[row["first"]], LAST_NAMES[row["last"]]
    company = f"{COMPANY_WORDS[row['word']]} {COMPANY_SUFFIXES[row['suffix']]}"
    number = i + 1
    tenure = timedelta(days=row["tenure"])
    return {
        "profile": {
            "customer_id": f"gen-{number:06d}",
            "name": f"{first} {last}",
            "company": company,
            "email": f"{first.lower()}.{last.lower()}.{number}@example.com",
            "phone": f"+1415{row['phone']:07d}" if row["phone"] >= 0 else None,
            "plan": PLANS[row["plan"]],
            "segment": SEGMENTS[row["segment"]],
            "timezone": TIMEZONES[row["timezone"]],
            "assigned_csm": CSMS[row["csm"]] if row["csm"] >= 0 else None,
            "signup_date": snapshot_date - tenure if row["signup_known"] else None,
            "onboarding_progress": _or_none(row["onboarding"]),
        },
        "usage": {
            "days_since_last_login": row["inactive_days"],
            "logins_per_week": row["logins"],
            "logins_per_week_prior": row["logins_prior"],
            "features_used": row["features_used"],
            "total_features": row["total_features"],
            "actions_per_session": row["depth"],
            "active_users": row["active_users"],
            "max_users": row["seats"],
            "active_users_history": _last(row["users_history"], row["users_months"]),
            "advanced_features_used": row["advanced_used"],
            "storage_used_gb": row["storage_used"],
            "storage_limit_gb": row["storage_limit"],
            "api_calls_month": row["api_calls"],
            "api_limit_month": row["api_limit"],
        },
        "engagement": {
            "email_open_rate": row["open_rate"],
            "webinars_attended_90d": row["webinars"],
            "resources_downloaded_90d": row["resources"],
        },
        "support": {
            "tickets_90d": row["tickets"],
            "avg_ticket_sentiment": row["sentiment"],
            "satisfaction": _or_none(row["csat"]),
        },
        "financial": {
            "annual_contract_value": row["contract"],
            "payment_delays_90d": row["payment_delays"],
            "expansion_revenue": row["expansion_revenue"],
            "discount_pct": row["discount"],
        },
        "relationship": {
            "nps": row["nps"] if row["nps"] >= 0 else None,
            "executive_engaged": row["executive"],
            "champion_status": CHAMPION_STATUSES[row["champion"]],
        },
        "health_history": _last(row["history"], row["history_months"]),
    }


def _or_none(value: float) -> float | None:
    return None if math.isnan(value) else value


def _last(series: list[Any], count: int) -> list[Any]:
    """The last `count` items: a young account has fewer months behind it."""
    return series[len(series) - count :] if count > 0 else []
