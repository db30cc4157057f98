"""When a schedule's ticks fall (services/scheduler/schedules/cron.py): croniter over zoneinfo, the DST
rule of docs/api.md, the misfire walk, and what a schedule's body may hold (stevedore_jobs/contract/schedule.py)."""
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from services.scheduler.schedules import cron
from shared.errors import ValidationError
from stevedore_jobs.contract import Limits, openapi, requests, schedule
from stevedore_jobs.contract.checks import Invalid

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def at(tz, *fields, fold=0):
    return datetime(*fields, tzinfo=tz, fold=fold).timestamp()


def ticks(expression, tz, start, n):
    out, t = [], start
    for _ in range(n):
        t = cron.next_tick(expression, tz, t)
        out.append(datetime.fromtimestamp(t, tz))
    return out


def local(moments):
    return [(m.strftime("%m-%d %H:%M"), m.utcoffset().total_seconds() / 3600) for m in moments]


def test_ticks_are_read_in_the_schedules_timezone():
    start = at(ZoneInfo("UTC"), 2026, 1, 10, 12, 0)
    assert local(ticks("0 9 * * *", BERLIN, start, 2)) == [("01-11 09:00", 1.0), ("01-12 09:00", 1.0)]
    assert datetime.fromtimestamp(cron.next_tick("0 9 * * *", NEW_YORK, start), ZoneInfo("UTC")).hour == 14


def test_a_fixed_time_in_the_skipped_hour_runs_once_at_the_first_instant_after_the_gap():
    start = at(BERLIN, 2026, 3, 28, 12, 0)  # Berlin springs forward 2026-03-29 02:00 -> 03:00
    assert local(ticks("30 2 * * *", BERLIN, start, 3)) == [
        ("03-29 03:00", 2.0), ("03-30 02:30", 2.0), ("03-31 02:30", 2.0)]


def test_several_ticks_in_the_skipped_hour_make_one_run():
    start = at(BERLIN, 2026, 3, 29, 1, 40)
    assert local(ticks("*/15 * * * *", BERLIN, start, 4)) == [
        ("03-29 01:45", 1.0), ("03-29 03:00", 2.0), ("03-29 03:15", 2.0), ("03-29 03:30", 2.0)]


def test_a_fixed_hour_in_the_repeated_hour_ticks_once_in_the_first_pass():
    start = at(BERLIN, 2026, 10, 24, 12, 0)  # Berlin falls back 2026-10-25 03:00 -> 02:00
    assert local(ticks("30 2 * * *", BERLIN, start, 3)) == [
        ("10-25 02:30", 2.0), ("10-26 02:30", 1.0), ("10-27 02:30", 1.0)]
    assert local(ticks("@daily", NEW_YORK, at(NEW_YORK, 2026, 10, 31, 12, 0), 2)) == [
        ("11-01 00:00", -4.0), ("11-02 00:00", -5.0)]


def test_every_n_minutes_follows_real_time_through_both_passes_of_the_repeated_hour():
    start = at(BERLIN, 2026, 10, 25, 1, 50)
    assert local(ticks("*/30 * * * *", BERLIN, start, 6)) == [
        ("10-25 02:00", 2.0), ("10-25 02:30", 2.0), ("10-25 02:00", 1.0), ("10-25 02:30", 1.0),
        ("10-25 03:00", 1.0), ("10-25 03:30", 1.0)]
    moments = ticks("@hourly", BERLIN, at(BERLIN, 2026, 10, 25, 0, 30), 4)
    assert [b.timestamp() - a.timestamp() for a, b in zip(moments, moments[1:])] == [3600, 3600, 3600]


def test_after_downtime_the_latest_due_tick_is_found_and_the_earlier_ones_counted():
    first = at(ZoneInfo("UTC"), 2026, 1, 1, 0, 0)
    latest, passed = cron.due("*/15 * * * *", ZoneInfo("UTC"), first, first + 3600 + 60)
    assert latest == first + 3600 and passed == 4
    assert cron.due("*/15 * * * *", ZoneInfo("UTC"), first, first + 10) == (first, 0)
    # a long downtime of a frequent schedule: the walk stops, the latest is still the latest
    latest, passed = cron.due("* * * * *", ZoneInfo("UTC"), first, first + 86400 * 3 + 30)
    assert latest == first + 86400 * 3 and passed == cron.SEARCH


@pytest.mark.parametrize("expression", [
    "H * * * *", "0 0 L * *", "0 0 * * 5#2", "0 0 1W * *", "* * * * * *", "0 0 1 1 * 2026", "@reboot", "",
    "61 * * * *", "* 24 * * *", "*/0 * * * *", "0 0 * FOO *", "0 0 * * MON-FOO", "0 0 31 2 *", "R * * * *",
    "x" * 101, 15, "59-1 * * * *", "0 0 * DEC-JAN *", "* * * * FRI-MON"])
def test_croniters_extensions_and_impossible_expressions_are_a_400_naming_cron(expression):
    with pytest.raises(ValidationError) as caught:
        cron.check(expression, "UTC")
    assert caught.value.field == "cron"


@pytest.mark.parametrize("expression, stored", [
    ("*/15 * * * *", "*/15 * * * *"), ("0 9 * * MON-FRI", "0 9 * * MON-FRI"), ("@HOURLY", "@hourly"),
    ("  0  0 1,15 JAN-jun 0-6/2 ", "0 0 1,15 JAN-jun 0-6/2"), ("@midnight", "@midnight"),
    ("0 0 * * SUN-SAT", "0 0 * * SUN-SAT"), ("0 0 29 2 *", "0 0 29 2 *")])
def test_standard_expressions_and_macros_are_accepted(expression, stored):
    assert cron.check(expression, "Europe/Berlin") == stored


def test_seconds_only_with_the_testing_setting():
    with pytest.raises(ValidationError, match="must have 5 fields"):
        cron.check("* * * * * */5", "UTC")
    assert cron.check("* * * * * */5", "UTC", allow_seconds=True) == "* * * * * */5"
    start = at(ZoneInfo("UTC"), 2026, 1, 1, 0, 0, 1)
    assert cron.next_tick("* * * * * */5", ZoneInfo("UTC"), start) == start + 4


# localtime: a file beside the zones on Debian (a link to /etc/localtime), a different zone on each host
@pytest.mark.parametrize("key", ["Mars/Olympus", "europe/berlin", "", "../etc/passwd", 7, "A" * 65, "localtime"])
def test_a_timezone_must_be_a_key_of_the_zone_database(key):
    with pytest.raises(ValidationError) as caught:
        cron.zone(key)
    assert caught.value.field == "timezone"


def test_a_schedule_stored_with_a_zone_no_longer_accepted_still_ticks_where_the_host_has_it(monkeypatch):
    monkeypatch.setattr(cron.zoneinfo, "ZoneInfo", lambda key: ZoneInfo("Europe/Berlin") if key == "localtime"
                        else ZoneInfo(key))
    with pytest.raises(ValidationError):
        cron.zone("localtime")
    assert cron.stored_zone("localtime").key == "Europe/Berlin"
    assert cron.stored_zone("UTC").key == "UTC"


def test_the_zones_accepted_are_the_same_on_every_host():
    import importlib.resources

    listed = set(importlib.resources.files("tzdata").joinpath("zones").read_text().split())
    assert {"Europe/Berlin", "UTC", "America/New_York", "Factory"} <= listed
    for key in ("Europe/Berlin", "UTC", "Etc/GMT-14", "EST5EDT"):
        assert cron.zone(key).key == key
    from stevedore_jobs.contract.openapi import timezones
    assert "localtime" not in timezones() and "Europe/Berlin" in timezones()


def test_a_schedules_run_is_checked_as_a_run_its_fields_named_run_dot():
    assert schedule.schedule_run({"times": 2, "command": "echo hi"})["command"] == ["echo", "hi"]
    assert schedule.schedule_run({"operation": "RUN", "times": 1})["times"] == 1
    for run, field in (({"times": 0}, "run.times"), ({"times": 1, "after": []}, "run.after"),
                       ({"items": [{}], "matrix": {"A": ["1"]}}, "run.matrix"), ({"items": "x"}, "run.items"),
                       ({"times": 3, "matrix": {"A": ["1"]}}, "run.times"),
                       ({"per_index": True, "times": 1}, "run.per_index"),
                       ({"times": 1, "memory": "3g"}, "run.memory"), ({}, "run.times"),
                       ({"times": 1, "operation": "IMPORT"}, "run.operation"), ("x", "run")):
        with pytest.raises(Invalid) as caught:
            schedule.schedule_run(run, Limits(10, 2 * 1024 ** 3, 2.0))
        assert caught.value.field == field


def test_a_schedules_run_may_give_each_execution_its_own_parameters():
    params, spread = schedule.schedule_run_parts({"matrix": {"A": ["1", "2"], "B": ["x"]}})
    assert params["times"] == 2 and params["per_execution"] == "matrix"
    assert spread == {"matrix": {"A": ["1", "2"], "B": ["x"]}}
    params, spread = schedule.schedule_run_parts({"items": [{"env": {"N": "1"}}, {"command": "echo hi"}]})
    assert params["times"] == 2 and params["per_execution"] == "items"
    assert spread == {"items": [{"env": {"N": "1"}}, {"command": ["echo", "hi"]}]}
    assert schedule.schedule_run_parts({"times": 2}) == (schedule.schedule_run({"times": 2}), None)


def test_a_schedule_patch_that_changes_nothing_is_a_400_naming_the_body_as_a_results_is():
    with pytest.raises(Invalid, match="^body: give one or more of name, cron, "):
        requests.parse(schedule.ScheduleChange, {})
    assert requests.parse(schedule.ScheduleChange, {"suspend": True}).suspend is True
    assert openapi.spec()["components"]["schemas"]["ScheduleChange"]["minProperties"] == 1


def test_a_stored_zone_this_host_cannot_read_is_a_400_naming_timezone_when_a_change_keeps_it():
    with pytest.raises(ValidationError) as caught:
        cron.kept_zone("Mars/Olympus")
    assert caught.value.field == "timezone" and "stored zone" in str(caught.value)
    assert cron.kept_zone("UTC").key == "UTC"
