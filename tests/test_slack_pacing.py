"""Slack pacing: posts to one channel reach the fake Slack at least a second apart, whichever
threads post them; other channels are not held up; a turn too far away is handed back as a
retryable answer instead of being waited for. The pacer and the fake share a fake clock (its
sleep moves it), so these runs are fast and their spacing is the requests', not the test's."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from itertools import pairwise

from fake_slack import ANA_CHANNEL, TEAM_CHANNEL, FakeSlack
from test_slack_alerts import an_alert

from retention.delivery.pacing import ChannelPacer


class FakeClock:
    """Seconds that pass only when the pacer sleeps."""

    def __init__(self) -> None:
        self.now = 1_000.0
        self.slept: list[float] = []
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.slept.append(seconds)
            self.now += seconds


def paced_slack(clock: FakeClock, max_wait: float = 5.0) -> tuple[FakeSlack, ChannelPacer]:
    fake = FakeSlack(clock=clock).start()
    return fake, ChannelPacer(max_wait=max_wait, clock=clock, sleep=clock.sleep)


def test_alerts_to_one_channel_from_several_threads_reach_slack_a_second_apart() -> None:
    clock = FakeClock()
    fake, pacer = paced_slack(clock)
    slack = fake.provider(pacer=pacer)
    alerts = [an_alert(f"jk-{n}:alert:slack", csm=None) for n in range(4)]
    try:
        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(lambda a: slack.post(a, TEAM_CHANNEL), alerts))
    finally:
        fake.stop()

    assert [a.outcome for a in answers] == ["delivered"] * 4
    taken = [m.received_at for m in fake.messages(TEAM_CHANNEL)]
    assert len(taken) == 4
    assert all(later - earlier >= 1.0 for earlier, later in pairwise(taken))


def test_posts_to_another_channel_are_not_paced_against_the_first() -> None:
    clock = FakeClock()
    fake, pacer = paced_slack(clock)
    slack = fake.provider(pacer=pacer)
    try:
        slack.post(an_alert("jk-1:alert:slack", csm=None), TEAM_CHANNEL)
        slack.post(an_alert("jk-2:alert:slack"), ANA_CHANNEL)
        slack.post(an_alert("jk-3:alert:slack", csm=None), TEAM_CHANNEL)
    finally:
        fake.stop()

    [team_first, team_second] = fake.messages(TEAM_CHANNEL)
    [ana] = fake.messages(ANA_CHANNEL)
    assert ana.received_at == team_first.received_at  # Ana's channel did not wait
    assert team_second.received_at - team_first.received_at == 1.0
    assert clock.slept == [1.0]  # the only wait: the team channel's second post


def test_a_turn_too_far_away_is_a_retryable_answer_with_its_wait() -> None:
    clock = FakeClock()
    fake, pacer = paced_slack(clock, max_wait=1.5)
    slack = fake.provider(pacer=pacer)
    fake.hold_next()  # the first post is taken, its answer held: the channel stays busy
    try:
        with ThreadPoolExecutor(2) as pool:
            first = pool.submit(slack.post, an_alert("jk-1:alert:slack", csm=None), TEAM_CHANNEL)
            assert fake.held.wait(timeout=30)
            second = pool.submit(slack.post, an_alert("jk-2:alert:slack", csm=None), TEAM_CHANNEL)
            while pacer.queued(TEAM_CHANNEL) == 0 and not second.done():
                threading.Event().wait(0.01)
            third = slack.post(an_alert("jk-3:alert:slack", csm=None), TEAM_CHANNEL)
            fake.release()
            answers = [first.result(timeout=30), second.result(timeout=30)]
    finally:
        fake.stop()

    assert third.outcome == "retryable" and third.retry_after == timedelta(seconds=2)
    assert third.error == "Slack channel C0TEAM0001 is busy: next post in 2 s"
    assert [a.outcome for a in answers] == ["delivered", "delivered"]
    assert len(fake.messages(TEAM_CHANNEL)) == 2  # the third was never posted


def test_the_default_pacer_spaces_posts_by_the_fakes_own_clock() -> None:
    """Real time: three posts from three threads, about two seconds."""
    fake = FakeSlack().start()
    slack = fake.provider()
    alerts = [an_alert(f"jk-{n}:alert:slack", csm=None) for n in range(3)]
    try:
        with ThreadPoolExecutor(3) as pool:
            list(pool.map(lambda a: slack.post(a, TEAM_CHANNEL), alerts))
    finally:
        fake.stop()

    taken = [m.received_at for m in fake.messages(TEAM_CHANNEL)]
    assert len(taken) == 3
    assert all(later - earlier >= 1.0 for earlier, later in pairwise(taken))
