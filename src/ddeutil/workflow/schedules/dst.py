"""The daylight-saving policy of schedules: cron fire times as UTC instants in one zone.

:class:`ZonedCron` reads a :class:`~ddeutil.workflow.schedules.cron.CronExpression` (which
matches *wall-clock* minutes and knows nothing about zones) in one zone and turns
matching wall-clock minutes into UTC instants. All arithmetic is done on integer UTC
seconds; the zone is only used to find its constant-offset segments (between two
transitions, see :class:`_Timeline`), inside which wall time and UTC differ by a
fixed offset.

Policy (cronie's, what VM operators expect). Like cronie, the kind of a job is read
from the *text* of its minute and hour fields:

* **Fixed wall-clock time** - neither field starts with ``*`` (``30 1 * * *``,
  ``0 9 * * 1-5``, ``0 0-23 * * *``, ``@daily``):

  - a matching time inside a spring-forward gap runs at the first valid instant after
    the gap (the transition itself): ``30 2 * * *`` in America/New_York on 2025-03-09
    runs at 03:00 EDT (07:00Z);
  - a matching time that occurs twice at fall-back runs once, at its first occurrence:
    ``30 1 * * *`` on 2025-11-02 runs at 01:30 EDT (05:30Z) only, ``0 0-23 * * *``
    runs at 01:00 EDT but not at 01:00 EST.

* **Elapsed time** - the minute or the hour field starts with ``*`` (``0 * * * *``,
  ``0 */2 * * *``, ``*/15 1 * * *``, ``* 2 * * *``, ``@hourly``): the schedule
  follows the clock as it is lived. Wall times that do not exist are simply not
  reached (``* 2 * * *`` does not run at all on 2025-03-09 in New York), and both
  copies of a repeated hour run: ``0 * * * *`` on 2025-11-02 in New York runs at
  05:00Z, 06:00Z and 07:00Z, ``*/15 1 * * *`` runs eight times.

Where this differs from cronie: cronie runs a fixed-time job once for *each* matching
minute skipped in a gap, several runs at the same instant (``0,30 2 * * *`` twice at
03:00); here it runs once at that instant, with any job due at the gap's end itself,
so successive fire times are strictly increasing in UTC, never repeat, and each is
claimed once. Cronie also applies its gap handling only to clock jumps under three
hours; the offset changes of America/New_York, Europe/London, America/Sao_Paulo,
Australia/Lord_Howe and Asia/Kolkata are all one hour or less, but where a zone
skipped a whole day (Pacific/Apia, 2011-12-30) a fixed-time job still runs once at
the end of the gap here, where cronie would skip it.
"""

from __future__ import annotations

import threading
from bisect import bisect_right
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone, tzinfo
from functools import cache, lru_cache
from typing import Any, NamedTuple, Protocol

from ..errors import ScheduleError

__all__ = ["WallClockMatcher", "ZonedCron", "zoned_cron"]


class WallClockMatcher(Protocol):
    """What :class:`ZonedCron` reads of an expression (a
    :class:`~ddeutil.workflow.schedules.cron.CronExpression`): matching wall-clock
    minutes as naive seconds since the epoch, and whether its time is fixed.
    """

    @property
    def fixed_time(self) -> bool: ...

    def next_wall(self, lo: int) -> int: ...

    def prev_wall(self, hi: int) -> int: ...


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_DAY = 86_400
_MIN_ORDINAL = date.min.toordinal() + 2  # keep a margin for zone offsets
_MAX_ORDINAL = date.max.toordinal() - 2


class _Year(NamedTuple):
    starts: tuple[int, ...]  # segment starts; starts[0] is the year's first second (UTC)
    offsets: tuple[int, ...]  # UTC offset (seconds) from each start
    end: int  # first second of the next year
    before: int  # offset just before the year
    after: int  # offset at ``end``


class _Timeline:
    """The constant-offset segments of one zone, built per UTC year and cached.

    A year is probed once a day and every offset change is pinned to the second by
    bisection. Offset changes in tzdata are at least four days apart (checked for every
    zone since 1900), so daily probes see each of them. Year boundaries split segments
    too; they behave as transitions that change nothing.
    """

    def __init__(self, zone: tzinfo) -> None:
        self.zone = zone
        self._years: dict[int, _Year] = {}
        self._last: _Year | None = None
        self._lock = threading.Lock()

    def offset(self, ts: int) -> int:
        """UTC offset in seconds at instant ``ts`` (UTC seconds)."""
        ts = min(
            max(ts, (_MIN_ORDINAL - _EPOCH_ORDINAL) * _DAY), (_MAX_ORDINAL - _EPOCH_ORDINAL) * _DAY
        )
        off = (_EPOCH + timedelta(seconds=ts)).astimezone(self.zone).utcoffset()
        return 0 if off is None else off.days * _DAY + off.seconds

    def segment(self, ts: int) -> tuple[int, int, int, int, int]:
        """``(start, end, offset, offset_before, offset_after)`` of the segment holding ``ts``."""
        year = self._last
        if year is None or not year.starts[0] <= ts < year.end:
            ordinal = ts // _DAY + _EPOCH_ORDINAL
            if not _MIN_ORDINAL <= ordinal <= _MAX_ORDINAL:
                raise ScheduleError("instant outside the supported years 1-9999")
            year = self._year(date.fromordinal(ordinal).year)
            self._last = year
        starts, offsets = year.starts, year.offsets
        i = bisect_right(starts, ts) - 1
        before = offsets[i - 1] if i else year.before
        if i + 1 < len(starts):
            return starts[i], starts[i + 1], offsets[i], before, offsets[i + 1]
        return starts[i], year.end, offsets[i], before, year.after

    def _year(self, y: int) -> _Year:
        found = self._years.get(y)
        if found is None:
            with self._lock:
                found = self._years.get(y)
                if found is None:
                    found = self._years[y] = self._probe(y)
        return found

    def _probe(self, y: int) -> _Year:
        start = (date(y, 1, 1).toordinal() - _EPOCH_ORDINAL) * _DAY
        end = start + (366 if y % 4 == 0 and (y % 100 != 0 or y % 400 == 0) else 365) * _DAY
        offset = self.offset
        starts, offsets = [start], [offset(start)]
        lo, lo_off = start, offsets[0]
        while lo < end:
            hi = min(lo + _DAY, end)
            hi_off = offset(hi)
            if hi_off != lo_off:
                a, b = lo, hi  # offset(a) == lo_off != offset(b)
                while b - a > 1:
                    mid = (a + b) // 2
                    if offset(mid) == lo_off:
                        a = mid
                    else:
                        b = mid
                if b < end:
                    starts.append(b)
                    offsets.append(hi_off)
            lo, lo_off = hi, hi_off
        return _Year(tuple(starts), tuple(offsets), end, offset(start - 1), offset(end))


@cache
def _timeline(zone: tzinfo) -> _Timeline:
    return _Timeline(zone)


class ZonedCron:
    """A cron expression read in one zone: fire instants as integer UTC seconds.

    Implements the DST policy of the module docstring. Instances are cheap and safe to
    share between threads; each remembers its last answer, so repeated "what fires
    after T" questions for a moving T (a scheduler tick) cost a comparison until the
    next fire time is passed.

    Args:
        expr: The expression.
        zone: The zone whose wall clock the fields are matched against.
    """

    __slots__ = ("_memo", "_timeline", "expr", "zone")

    def __init__(self, expr: WallClockMatcher, zone: tzinfo) -> None:
        self.expr = expr
        self.zone = zone
        self._timeline = _timeline(zone)
        self._memo = (1, 0)  # (lo, nxt): the first fire after any t in [lo, nxt) is nxt

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ZonedCron):
            return self.expr == other.expr and self.zone == other.zone
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self.expr, self.zone))

    def __reduce__(self) -> tuple[Any, ...]:
        return (ZonedCron, (self.expr, self.zone))

    def __repr__(self) -> str:
        return f"ZonedCron({str(self.expr)!r}, {self.zone!s})"

    def next_after(self, ts: int) -> int:
        """The first fire instant strictly after ``ts`` (UTC seconds)."""
        lo, nxt = self._memo
        if lo <= ts < nxt:
            return nxt
        nxt = self._next_after(ts)
        self._memo = (ts, nxt)
        return nxt

    def fire_times(
        self, after: datetime, until: datetime | None = None, *, newest_first: bool = False
    ) -> Iterator[datetime]:
        """Fire times in ``(after, until]`` (aware bounds) as aware UTC datetimes, lazily.

        Oldest first, for ever without ``until``; with ``newest_first`` walked
        backwards from ``until`` (required then).

        Raises:
            ValueError: ``newest_first`` without ``until``.
        """
        lo = _seconds(after)
        if newest_first:
            if until is None:
                raise ValueError("newest_first needs an `until` to walk back from")
            return self._backward(lo, _seconds(until))
        return self._forward(lo, None if until is None else _seconds(until))

    def _forward(self, lo: int, hi: int | None) -> Iterator[datetime]:
        at = self.next_after(lo)
        while hi is None or at <= hi:
            yield _EPOCH + timedelta(seconds=at)
            at = self.next_after(at)

    def _backward(self, lo: int, hi: int) -> Iterator[datetime]:
        at = hi + 1
        while (at := self.prev_before(at)) > lo:
            yield _EPOCH + timedelta(seconds=at)

    def _next_after(self, ts: int) -> int:
        expr, fixed = self.expr, self.expr.fixed_time
        segment = self._timeline.segment
        a, b, o, op, on = segment(ts)
        lo = ts + o + 1
        cached_lo, cached_w = 1, 0  # next_wall(x) == cached_w for x in [cached_lo, cached_w]
        while True:
            if fixed and op > o and lo < a + op:
                lo = a + op  # fall-back: these wall times already ran in the first copy
            if cached_lo <= lo <= cached_w:
                w = cached_w
            else:
                w = cached_w = expr.next_wall(lo)
                cached_lo = lo
            if w < b + o:
                return w - o
            if fixed and on > o and w < b + on:
                return b  # a matching time in the spring-forward gap runs at its end
            a, b, o, op, on = segment(b)
            lo = a + o

    def prev_before(self, ts: int) -> int:
        """The last fire instant strictly before ``ts`` (UTC seconds)."""
        expr, fixed = self.expr, self.expr.fixed_time
        segment = self._timeline.segment
        x = ts - 1
        a, _, o, op, _ = segment(x)
        hi = x + o
        cached_hi, cached_w = 0, 1  # prev_wall(x) == cached_w for x in [cached_w, cached_hi]
        while True:
            floor = a + op if fixed and op > o else a + o
            if cached_w <= hi <= cached_hi:
                w = cached_w
            else:
                w = cached_w = expr.prev_wall(hi)
                cached_hi = hi
            if w >= floor:
                return w - o
            if fixed and o > op and w >= a + op:
                return a  # the gap before this segment held a matching time
            x = a - 1
            a, _, o, op, _ = segment(x)
            hi = x + o


@lru_cache(maxsize=8192)
def zoned_cron(expr: WallClockMatcher, zone: tzinfo) -> ZonedCron:
    """One shared :class:`ZonedCron` per expression and zone (and so one memo)."""
    return ZonedCron(expr, zone)


def _seconds(when: datetime) -> int:
    """Whole UTC seconds at or before an aware ``when``."""
    delta = when - _EPOCH
    return delta.days * 86_400 + delta.seconds
