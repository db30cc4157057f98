"""When a schedule's ticks fall: croniter over zoneinfo, with the DST rule stated and tested.

A cron expression is read in the schedule's timezone (an IANA key, checked
against the keys the ``tzdata`` package lists; the zone is read from the system's
database, else that package's).

* **The skipped hour** (spring forward: 02:00-02:59 does not exist in
  Europe/Berlin on the last Sunday of March): a tick whose wall-clock time
  falls in it runs once, at the first instant after the gap (03:00 local);
  several ticks in the gap (``*/15 * * * *``) make that one run.  croniter's
  behaviour, kept.
* **The repeated hour** (fall back: 02:00-02:59 happens twice on the last Sunday
  of October): an expression whose hour field is ``*`` (every N minutes, every
  hour) follows real time and ticks in both passes; one at a fixed hour
  (``30 2 * * *``, ``@daily``) ticks once, in the first pass (as Vixie cron
  does).  croniter alone would tick twice for a fixed hour: the second is
  dropped here.

Times are epoch seconds (UTC) everywhere else.
"""
import zoneinfo
from datetime import datetime

from croniter import croniter

from shared.errors import ValidationError
from stevedore_jobs.contract import schedule as contract
from stevedore_jobs.contract.checks import Invalid, shown

SEARCH = 1000  # ticks walked at most when counting the ones missed


def zone(key):
    """The timezone named ``key``, or a 400 naming ``timezone``."""
    if not isinstance(key, str) or len(key) > contract.TIMEZONE_MAX or key not in contract.timezone_keys():
        raise ValidationError(f"{shown(key) if isinstance(key, str) else 'it'} is not a timezone of the IANA "
                              "database, such as Europe/Berlin or UTC", "timezone")
    return zoneinfo.ZoneInfo(key)


def stored_zone(key):
    """The timezone of a stored schedule, for its fires: as ``zone``; one stored before the keys were
    those ``tzdata`` lists (``localtime``) goes on ticking as it did, where this host's zoneinfo has it
    (a change of its schedule that names a timezone must name one ``zone`` takes; one that names none
    keeps it: ``kept_zone``)."""
    try:
        return zone(key)
    except ValidationError:
        return zoneinfo.ZoneInfo(key)


def kept_zone(key):
    """The zone of a stored schedule that a change keeps (it names no ``timezone``): as its fires read it
    (``stored_zone``); one this host cannot read either is a 400 naming ``timezone``."""
    try:
        return stored_zone(key)
    except (ValueError, KeyError, OSError):  # zoneinfo's ZoneInfoNotFoundError is a KeyError
        raise ValidationError(f"the schedule's stored zone {shown(key)} is not known here; give one of the IANA "
                              "database, such as Europe/Berlin or UTC", "timezone") from None


def check(expression, timezone, allow_seconds=False, tz=None):
    """The expression as stored, checked (its shape, then croniter can iterate it in ``tz``, else the zone
    ``timezone`` names): else a 400 naming ``cron``."""
    try:
        expression = contract.check_cron(expression, allow_seconds)
    except Invalid as exc:
        raise ValidationError(exc.message, exc.field) from None
    tz = tz or zone(timezone)
    try:
        if not croniter.is_valid(expression):
            raise ValueError("croniter cannot read it")
        next_tick(expression, tz, datetime.now(tz).timestamp())
    except (ValueError, KeyError, ArithmeticError) as exc:
        raise ValidationError(f"{shown(expression)} has no time it would run ({exc.__class__.__name__}: "
                              f"{str(exc)[:100]})", "cron") from None
    return expression


def _fixed_hour(expression):
    if expression.startswith("@"):
        return expression != "@hourly"
    return expression.split()[1] != "*"


def _second_pass(moment, tz):
    """Whether ``moment`` is the second time its wall-clock time happens (the repeated hour)."""
    wall = moment.replace(tzinfo=None)
    first = wall.replace(tzinfo=tz, fold=0)
    return first.utcoffset() != moment.utcoffset() and wall.replace(tzinfo=tz, fold=1).utcoffset() == moment.utcoffset()


def next_tick(expression, tz, after):
    """The first tick strictly after epoch ``after``, as epoch seconds."""
    it = croniter(expression, datetime.fromtimestamp(after, tz))
    fixed = _fixed_hour(expression)
    while True:
        moment = it.get_next(datetime)
        if not (fixed and _second_pass(moment, tz)):
            return moment.timestamp()


def due(expression, tz, first, now):
    """The ticks from ``first`` (a tick) up to ``now``: (the latest, how many before it were passed over).

    At most ``SEARCH`` ticks are walked; past that the latest is found backwards
    and the count says ``SEARCH`` (at least that many).
    """
    latest, passed = first, 0
    while passed < SEARCH:
        following = next_tick(expression, tz, latest)
        if following > now:
            return latest, passed
        latest, passed = following, passed + 1
    it = croniter(expression, datetime.fromtimestamp(now, tz))
    backwards = it.get_prev(datetime).timestamp()
    return max(latest, backwards), passed
