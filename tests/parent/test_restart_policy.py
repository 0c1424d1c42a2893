"""The restart policy: a pure function of the restart mode, the earlier deaths and now."""

from __future__ import annotations

import pytest
from actors_runtime.parent.restart_policy import RestartPolicy, judge

POLICY = RestartPolicy(limit=3, window=60.0, first_delay=0.1, max_delay=0.5)


def test_an_actor_whose_mode_is_never_is_not_restarted():
    verdict, deaths = judge(POLICY, "never", (), 100.0)
    assert not verdict.restart and "never" in verdict.reason
    assert deaths == ()


@pytest.mark.parametrize("mode", ["on-failure", "always"])
def test_restart_delays_double_with_each_recent_death_up_to_the_cap(mode):
    deaths: tuple[float, ...] = ()
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
                       (1.0, 2.0, 3.0, 4.0, 5.0), 6.0)
    assert verdict.delay == 0.5, "the delay must stop growing at the cap"


def test_more_deaths_than_the_limit_within_the_window_give_up_and_say_why():
    deaths: tuple[float, ...] = ()
    for now in (10.0, 20.0, 30.0):
        verdict, deaths = judge(POLICY, "on-failure", deaths, now)
        assert verdict.restart
    verdict, kept = judge(POLICY, "on-failure", deaths, 40.0)
    assert not verdict.restart
    assert verdict.reason == "died 4 times within 60 s"
    assert kept == (10.0, 20.0, 30.0)


def test_deaths_older_than_the_window_are_forgotten():
    verdict, deaths = judge(POLICY, "on-failure", (10.0, 20.0, 30.0), 85.0)
    assert verdict.restart, "deaths outside the window must not count"
    assert deaths == (30.0, 85.0)
    assert verdict.delay == 0.2  # one recent death before this one


def test_the_policy_never_reads_a_clock_of_its_own():
    # The same inputs give the same verdict whenever they are judged.
    first = judge(POLICY, "on-failure", (1.0, 2.0), 3.0)
    second = judge(POLICY, "on-failure", (1.0, 2.0), 3.0)
    assert first == second
