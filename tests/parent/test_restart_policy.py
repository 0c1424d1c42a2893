"""The restart policy: a pure function of the restart mode, the earlier deaths and now."""

from __future__ import annotations

import pytest
from actors_runtime.parent.restart_policy import Deaths, RestartPolicy, judge

POLICY = RestartPolicy(limit=3, window=60.0, first_delay=0.1, max_delay=0.5)


def test_an_actor_whose_mode_is_never_is_not_restarted():
    verdict, deaths = judge(POLICY, "never", Deaths(), 100.0)
    assert not verdict.restart and "never" in verdict.reason
    assert deaths == Deaths()


@pytest.mark.parametrize("mode", ["on-failure", "always"])
def test_restart_delays_double_with_each_recent_death_up_to_the_cap(mode):
    deaths = Deaths()
    delays = []
    now = 100.0
    for _ in range(3):
        verdict, deaths = judge(RestartPolicy(limit=10, window=60.0, first_delay=0.1, max_delay=0.5), mode,
                                deaths, now)
        assert verdict.restart
        delays.append(verdict.delay)
        now += 1.0
    assert delays == [0.1, 0.2, 0.4]
    verdict, _ = judge(RestartPolicy(limit=10, window=60.0, first_delay=0.1, max_delay=0.5), mode,
                       Deaths((1.0, 2.0, 3.0, 4.0, 5.0)), 6.0)
    assert verdict.delay == 0.5, "the delay must stop growing at the cap"


def test_more_deaths_than_the_limit_within_the_window_give_up_and_say_why():
    deaths = Deaths()
    for now in (10.0, 20.0, 30.0):
        verdict, deaths = judge(POLICY, "on-failure", deaths, now)
        assert verdict.restart
    verdict, kept = judge(POLICY, "on-failure", deaths, 40.0)
    assert not verdict.restart
    assert verdict.reason == "died 4 times within 60 s"
    assert kept == Deaths((10.0, 20.0, 30.0))


def test_deaths_older_than_the_window_are_forgotten():
    verdict, deaths = judge(POLICY, "on-failure", Deaths((10.0, 20.0, 30.0)), 85.0)
    assert verdict.restart, "deaths outside the window must not count"
    assert deaths == Deaths((30.0, 85.0))
    assert verdict.delay == 0.2  # one recent death before this one


def test_the_policy_never_reads_a_clock_of_its_own():
    # The same inputs give the same verdict whenever they are judged.
    first = judge(POLICY, "on-failure", Deaths((1.0, 2.0)), 3.0)
    second = judge(POLICY, "on-failure", Deaths((1.0, 2.0)), 3.0)
    assert first == second


def test_deaths_with_a_message_in_flight_never_use_up_the_restart_budget():
    deaths = Deaths()
    for now in range(10, 30):  # far more than the limit of 3, all within the window
        verdict, deaths = judge(POLICY, "on-failure", deaths, float(now), poison=True)
        assert verdict.restart, f"poison death {now - 9} must not mark the actor failed"
    assert deaths.counted == () and len(deaths.poison) == 20


def test_deaths_with_a_message_in_flight_still_lengthen_the_backoff():
    policy = RestartPolicy(limit=3, window=60.0, first_delay=0.1, max_delay=10.0)
    delays = []
    deaths = Deaths()
    for now, poison in ((10.0, True), (11.0, True), (12.0, False), (13.0, True)):
        verdict, deaths = judge(policy, "on-failure", deaths, now, poison=poison)
        delays.append(verdict.delay)
    assert delays == [0.1, 0.2, 0.4, 0.8], "every recent death doubles the delay, whoever caused it"
    verdict, _ = judge(policy, "on-failure", Deaths(poison=tuple(float(t) for t in range(2000))), 2000.0,
                       poison=True)
    assert verdict.delay == 10.0, "the delay stops at the cap however many poison deaths came before"


def test_deaths_with_nothing_in_flight_still_count_after_poison_deaths():
    deaths = Deaths()
    for now in (10.0, 11.0, 12.0, 13.0):
        _, deaths = judge(POLICY, "on-failure", deaths, now, poison=True)
    for now in (20.0, 21.0, 22.0):
        verdict, deaths = judge(POLICY, "on-failure", deaths, now)
        assert verdict.restart
    verdict, _ = judge(POLICY, "on-failure", deaths, 23.0)
    assert not verdict.restart and verdict.reason == "died 4 times within 60 s"


def test_poison_deaths_older_than_the_window_no_longer_lengthen_the_backoff():
    verdict, deaths = judge(POLICY, "on-failure", Deaths(poison=(10.0, 20.0)), 100.0, poison=True)
    assert verdict.delay == 0.1 and deaths == Deaths(poison=(100.0,))


def test_a_poison_death_of_an_actor_whose_mode_is_never_still_fails_it():
    verdict, _ = judge(POLICY, "never", Deaths(), 100.0, poison=True)
    assert not verdict.restart and "never" in verdict.reason
