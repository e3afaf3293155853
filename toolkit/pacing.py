"""One send rate for a whole bulk run, found on its own: AIMD, slow start, a remembered limit.

An analyst cannot know the server's rate limit, so a run finds it. `AdaptivePacer` is shared
by every worker of a run (the client consults it around each API request, see `Pacer`):

- **slow start** (RFC 5681 §3.1, TCP congestion control): the rate starts modestly and
  doubles about once per round trip while answers are clean, so a fast server is reached in a
  fraction of a second;
- **multiplicative decrease, once per episode** (RFC 5681 §3.2 and RFC 6582's "one reduction
  per window"): the first throttled answer (429, 503 with Retry-After, an EnKash velocity code)
  cuts the rate; answers to requests sent before that cut are the same episode and do not cut
  again;
- **a remembered limit**, as CUBIC remembers W_max (RFC 9438 §4): between two throttling
  episodes the server accepted A answers in T seconds, so its limit is at least (A - 1) / T
  (a token bucket is empty when it throttles). The rate settles just below the highest such
  bound and **additive increase** probes above it slowly, so the run hovers near the limit
  instead of sawing between half and all of it (the classic AIMD average of 3/4);
- a **Retry-After pauses every worker at once** (the server asked the client, not one
  request); sending resumes through the same gate, one request per 1/rate, from a jittered
  start, so sleepers never wake as one herd on the same second;
- explicit caps (`rps_cap`, the in-flight `concurrency_cap`) are never exceeded; with
  ``concurrency_cap=None`` the in-flight rows follow Little's law (rate x latency, doubled),
  from ``start_concurrency``.

A throttled attempt spends no row's retry budget: the client asks for another turn, and
``wait_turn`` says False only once the run is cancelled or its deadline has passed.

`AdaptivePacer` is thread-safe. Its decisions live in `RateController`, which takes the time
as an argument, so its behaviour can be studied without threads or sleeping.
"""

from __future__ import annotations

import bisect
import logging
import math
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = [
    "AUTO",
    "AdaptivePacer",
    "PaceState",
    "Pacer",
    "RateController",
]

log = logging.getLogger(__name__)

AUTO = "auto"

# Where a run without an explicit --rps starts: gentle on any server, and slow start doubles
# it every round trip while answers are clean.
START_RPS = 8.0
SLOW_START_GAIN = 0.25
MIN_RPS = 0.2
# In-flight rows for --concurrency auto: from where, and never more than this.
START_CONCURRENCY = 8
MAX_AUTO_CONCURRENCY = 32
# The rate hovers this fraction below the remembered limit, and probes above it at this
# fraction of the limit per second (slower when each throttle costs a Retry-After pause).
MARGIN = 0.01
PROBE_PER_S = 0.004
PROBE_PER_S_PAUSED = 0.001
# A limit known only roughly is searched above at its uncertainty per this many seconds.
SEARCH_S = 3.0
FIRST_UNCERTAINTY = 0.5
PROBE_DOUBLING_S = 4.0
MAX_PROBE_PER_S = 0.1
SEARCH_S_PAUSED = 10.0
# How far above a measured limit a run searches when the server pauses its senders.
PAUSED_SEARCH_MAX = 0.02
# Below the hover rate, the rate closes this fraction of the gap per second (after a cut).
RECOVER_PER_S = 2.0
# A throttle is remembered as "the server is throttling" for this long (progress shows it).
THROTTLING_SHOWN_S = 5.0
# Send slots missed by a late thread are made up for this long (a burst of at most this much).
CATCH_UP_S = 0.05
# The least latency is taken over windows this long (the last two count).
MIN_RTT_WINDOW_S = 10.0
# Answers the window after slow start's first throttle needs to measure the limit from.
WINDOW_MIN_ANSWERS = 4
# Measurements (sent, accepted) are kept this long.
WINDOW_S = 60.0


@runtime_checkable
class Pacer(Protocol):
    """What the client consults around every paced API request (never around logins).

    ``wait_turn`` blocks until one request may be sent (the send rate, and any pause the
    server asked for); False means the run is cancelled or its deadline passed, and the
    client then raises `RateLimitError` without sending. ``on_answer`` follows each answer
    to a paced request: ``throttled`` for 429, 503 with Retry-After or an EnKash velocity code
    (36/37), ``retry_after`` in seconds, already parsed and capped.
    """

    def wait_turn(self) -> bool: ...

    def on_answer(self, *, throttled: bool, retry_after: float | None) -> None: ...


@dataclass(frozen=True, slots=True)
class PaceState:
    """A run's pace as progress shows it.

    ``rate`` requests/s allowed now; ``sent_per_s`` requests/s sent lately; ``limit`` the
    server's limit as measured (None until it throttled); ``throttling`` True while the server
    throttles (a throttled answer in the last few seconds, or a pause); ``paused_s`` seconds
    left of a pause the server asked for; ``throttled`` throttled answers so far; ``answers``
    answers so far; ``concurrency`` rows allowed in flight now; ``deadline_s`` seconds left
    before the run's deadline (None: none); ``rows_per_s`` rows finished per second lately
    (the run fills it in).
    """

    rate: float
    sent_per_s: float
    limit: float | None
    throttling: bool
    paused_s: float
    throttled: int
    answers: int
    concurrency: int
    deadline_s: float | None = None
    rows_per_s: float = 0.0

    def describe(self) -> str:
        """A few words for a progress line: "38.2 rows/s" or "38.2 rows/s, server throttling
        (limit about 40 req/s)" or "… paused 0.8 s by the server"."""
        if self.rows_per_s:
            text = f"{self.rows_per_s:.1f} rows/s"
        else:
            text = f"{self.sent_per_s:.1f} req/s"
        if self.paused_s > 0:
            text += f", paused {self.paused_s:.1f} s by the server"
        elif self.throttling:
            text += ", server throttling"
            if self.limit:
                text += f" (limit about {self.limit:.0f} req/s)"
        return text


class RateController:
    """The pacing decisions, with time passed in (seconds on one monotonic clock).

    ``ready_at(now)`` is when the next request may be sent; ``grant(now)`` books it (call it
    at or after ``ready_at``); ``answered(...)`` takes each answer. Not thread-safe:
    `AdaptivePacer` holds a lock around it.
    """

    def __init__(
        self,
        *,
        rps_cap: float | None = None,
        start_rps: float | None = None,
        concurrency_cap: int | None = None,
        start_concurrency: int = START_CONCURRENCY,
        random_source: Callable[[], float] = random.random,
        now: float = 0.0,
    ) -> None:
        if rps_cap is not None and not rps_cap > 0:
            raise ValueError("rps must be more than 0")
        if concurrency_cap is not None and concurrency_cap < 1:
            raise ValueError("concurrency must be at least 1")
        self.rps_cap = float(rps_cap) if rps_cap is not None else math.inf
        self.concurrency_cap = concurrency_cap
        # Given a cap, the analyst knows the server's pace: start there (and still back off).
        first = start_rps if start_rps is not None else (rps_cap or START_RPS)
        self.rate = max(MIN_RPS, min(float(first), self.rps_cap))
        self.slow_start = True
        self.limit: float | None = None  # the server's limit as last measured
        self.srtt: float | None = None  # smoothed request latency (RFC 6298's SRTT)
        self._min_rtt = self._min_rtt_before = math.inf  # least latency, this and last window
        self._min_rtt_since = now
        self.start_concurrency = max(1, int(start_concurrency))
        self._random = random_source
        self._started = now
        self._next = now
        self.paused_until = -math.inf
        self._paused_total = 0.0  # seconds paused so far
        self._last_cut = -math.inf  # requests granted before this belong to the last episode
        self._cut_at: float | None = None
        self._cut_paused = 0.0  # _paused_total at the last cut
        self._accepted = 0  # clean answers so far
        self._cut_accepted = 0  # _accepted at the last cut
        self._last_growth: float | None = None
        self.uncertainty = 0.0  # how far off (a fraction) the limit may be
        self._futile = 0  # cuts in a row that did not lengthen the clean spell
        self._spell_before = 0
        self._rate_before = 0.0
        self._search = 0.0  # of which this much is still to search above the limit
        self._search_speed = 0.0
        self._probe_from = now
        self._streak = (now, 0, 0.0)
        self._grants: list[float] = []  # grant times, ascending
        self.answers = 0
        self.throttled = 0
        # Slow start's first throttled request, and the window measured after it.
        self._first_throttled: float | None = None
        self._window: tuple[float, float] | None = None
        self._window_accepted = 0
        self._window_seen = 0.0
        self.last_throttle_at = -math.inf
        self.pauses = 0

    # -- sending -----------------------------------------------------------------------

    def ready_at(self, now: float) -> float:
        """When the next request may leave: one per 1/rate, never during a pause."""
        return max(self._next, self.paused_until)

    def grant(self, now: float) -> float:
        """Book one send at ``now`` (at or after `ready_at`); returns its slot time."""
        # A waker a little late keeps the pace: the slots it missed are made up, up to
        # CATCH_UP_S worth (so the rate is reached on a busy machine, and a burst is never
        # more than that); after a pause the pace starts again from its end.
        interval = 1.0 / self.rate
        base = max(self._next, now - max(interval, CATCH_UP_S))
        self._next = max(base, self.paused_until) + interval
        self._grants.append(now)
        return now

    def send_rate(self, now: float, window: float) -> float:
        """Requests granted per second over the last ``window`` seconds."""
        since = max(now - window, self._started)
        span = now - since
        if span <= 0:
            return 0.0
        grants = self._grants
        if len(grants) > 4096 and grants[len(grants) // 2] < now - WINDOW_S:
            del grants[: len(grants) // 2]
        return (len(grants) - bisect.bisect_right(grants, since)) / span

    def concurrency(self, now: float) -> int:
        """Rows that may be in flight now: the cap when given, else Little's law (the rate
        times the request latency), doubled for headroom. The latency counted is at most
        twice the least seen lately (and 20 ms): more is a queue at the server, which more
        rows in flight would only lengthen (as BBR sizes its window from the minimum RTT)."""
        if self.concurrency_cap is not None:
            return self.concurrency_cap
        if self.srtt is None:
            return self.start_concurrency
        latency = min(self.srtt, 2.0 * self.min_rtt(now) + 0.02)
        needed = math.ceil(2.0 * self.rate * latency) + 2
        if self.slow_start:
            needed = max(needed, self.start_concurrency)
        return max(2, min(MAX_AUTO_CONCURRENCY, needed))

    def min_rtt(self, now: float) -> float:
        """The least latency of a clean answer over the last one or two windows."""
        least = min(self._min_rtt, self._min_rtt_before)
        return least if least < math.inf else (self.srtt or 0.05)

    # -- answers -----------------------------------------------------------------------

    def answered(
        self,
        now: float,
        granted: float | None,
        *,
        throttled: bool,
        retry_after: float | None,
        backlogged: bool = False,
    ) -> None:
        """Take one answer to a request granted at ``granted``; ``backlogged``: requests are
        waiting for their turn now (the rate, not the workers, limits what is sent)."""
        self.answers += 1
        if granted is not None:
            self._watch_window(now, granted, throttled)
        if granted is not None and not throttled:
            latency = max(0.0, now - granted)
            self.srtt = latency if self.srtt is None else 0.875 * self.srtt + 0.125 * latency
            if now - self._min_rtt_since >= MIN_RTT_WINDOW_S:  # a fresh window, the last kept
                self._min_rtt_before, self._min_rtt = self._min_rtt, math.inf
                self._min_rtt_since = now
            self._min_rtt = min(self._min_rtt, latency)
        if throttled:
            self._throttled(now, granted, retry_after)
        else:
            self._accepted += 1
            self._grow(now, backlogged)

    def _watch_window(self, now: float, granted: float, throttled: bool) -> None:
        """After slow start's first throttle (nothing else): the requests sent between the
        first throttled one and the cut met an empty bucket, so those it accepted came at its
        refill rate — the server's limit, whatever its bucket's size (the first estimate, from
        averages, is wrong either way: a big burst inflates it, a small one leaves a slow
        climb's average). Measured from their answers (they come back during a pause too),
        once every one of them is in; then the rate starts from it."""
        if self._window is None:
            return
        first, cut = self._window
        if first <= granted < cut:
            self._window_seen = max(self._window_seen, granted)
            if not throttled:
                self._window_accepted += 1
            return
        if granted < cut:
            return  # sent before the bucket emptied
        # A request sent after the cut has its answer: the window's are all in.
        self._window = None
        span = self._window_seen - first
        rtt = self.srtt or 0.05
        if self._window_accepted < WINDOW_MIN_ANSWERS or span < rtt / 2:
            return
        # To half a token either way (the first and last accepted sit anywhere in a token's
        # interval): so is the uncertainty searched across.
        estimate = (self._window_accepted + 0.5) / span
        self.limit = estimate
        self.uncertainty = min(FIRST_UNCERTAINTY, 1.0 / self._window_accepted)
        self.rate = max(MIN_RPS, min(estimate * (1.0 - MARGIN), self.rps_cap))
        self._start_search(now, self.uncertainty)
        log.debug("limit measured after slow start: %.1f req/s", estimate)

    def _start_search(self, now: float, extent: float) -> None:
        """Search ``extent`` (a fraction) above the limit at a steady pace, then probe."""
        self._search = extent
        self._search_speed = extent / (SEARCH_S_PAUSED if self.pauses else SEARCH_S)
        self._probe_from = now

    def _grow(self, now: float, backlogged: bool = False) -> None:
        if now < self.paused_until:
            return
        last, self._last_growth = self._last_growth, now
        if self.slow_start:
            # A quarter more requests per round trip for each clean answer: the rate grows
            # e-fold every four round trips (TCP's doubling per round trip, gentler: a bucket's
            # burst hides the limit, and the overshoot before the first throttle is its size
            # times the growth per round trip).
            self.rate += SLOW_START_GAIN / max(self.srtt or 0.05, 0.001)
        elif last is not None:
            dt = min(now - last, 1.0)
            target = self.limit or self.rate
            hover = target * (1.0 - MARGIN)
            if self.rate < hover:
                self.rate += (hover - self.rate) * min(1.0, RECOVER_PER_S * dt)
            # And probe: first across the limit's uncertainty, at a steady pace; then from
            # just above it, slowly, faster the longer answers stay clean (CUBIC's convex
            # region: a server faster than measured is found in seconds, not minutes).
            if self._search > 0:
                speed = self._search_speed
                self._search -= speed * dt
                if self._search <= 0:
                    self._probe_from = now
            else:
                base = PROBE_PER_S_PAUSED if self.pauses else PROBE_PER_S
                speed = base * 2.0 ** ((now - self._probe_from) / PROBE_DOUBLING_S)
            step = min(speed, MAX_PROBE_PER_S) * dt
            self.rate += step * target
        # Never more than twice what was actually sent lately: a rate the workers do not use
        # (too few of them, a slow server) must not grow unseen (RFC 7661's idea). In slow
        # start, while requests wait for their turn, the rate is what limits sending and it is
        # all used: then it grows (RFC 7661 validates a window only when the sender does not
        # fill it). Once the server has throttled, the rate stays within reach of what was sent.
        if not (backlogged and self.slow_start):
            sent = self.send_rate(now, max(4 * (self.srtt or 0.05), 0.25))
            self.rate = min(self.rate, max(2.0 * sent, START_RPS, self.limit or 0.0))
        self.rate = max(MIN_RPS, min(self.rate, self.rps_cap))

    def _throttled(self, now: float, granted: float | None, retry_after: float | None) -> None:
        if self.slow_start and self._first_throttled is None:
            self._first_throttled = granted
        self.throttled += 1
        self.last_throttle_at = now
        if retry_after is not None and retry_after > 0:
            until = now + retry_after
            if until > self.paused_until:
                if self.paused_until < now:
                    self.pauses += 1
                    self._paused_total += retry_after
                else:
                    self._paused_total += until - self.paused_until
                # Sending resumes through the gate, from a jittered start.
                self.paused_until = until + self._random() / self.rate
        if granted is not None and granted < self._last_cut:
            return  # sent before the last cut: the same episode
        self._cut(now)

    def _cut(self, now: float) -> None:
        was = self.rate
        rtt = self.srtt or 0.05
        paused_since = self._paused_total - self._cut_paused
        # Episodes close together (within a few round trips, besides any pause) are one
        # streak of throttling: the server's bucket stayed empty all along.
        continuing = self._cut_at is not None and now - self._cut_at - paused_since <= 4 * rtt + 0.1
        if not continuing:
            self._streak = (now, self._accepted, self._paused_total)
        estimate = None
        if continuing:
            # The bucket stayed empty since the streak began: what the server accepted since,
            # over the time it was sent to since, is its limit (to a token; and the tokens a
            # pause gave back, which make it a little high). Still throttled, so the limit is
            # below the rate: the upper end of the count's one-token noise keeps a short
            # streak from cutting far below it.
            began, accepted0, paused0 = self._streak
            paused = self._paused_total - paused0
            span = max(now - began - paused, rtt)
            estimate = (self._accepted - accepted0 + 1.0) / span
            self.uncertainty = min(0.5, 2.0 / max(1.0, estimate * span))
        elif self._cut_at is not None:
            # After a clean spell the limit lies between what the server accepted since the
            # last episode (its bucket empty at both ends; tokens that overflowed while the
            # rate was low make this too low) and the rate that just emptied its bucket.
            span = now - self._cut_at
            spell = self._accepted - self._cut_accepted
            low = max(0.5, spell - 0.5) / span
            since = max(now - 2.0, self._cut_at + paused_since)
            high = self.send_rate(now, now - since) if now - since >= 0.25 else low
            if high <= low * (1.0 + 2.0 * MARGIN):
                estimate = low
                self.uncertainty = 2.0 / max(1.0, low * span)
            else:
                # Nearer the high end after a pause: `low` counts the pause as time the
                # server could have served, which is only true of a big enough bucket.
                weight = 0.25 if paused_since > 0 else 0.5
                estimate = high - (high - low) * weight
                self.uncertainty = min(0.5, (high - low) / (2.0 * estimate))
            # A cut that did not lengthen the clean spell, while the server accepted nearly
            # all that was sent, did not help: it throttles whatever the rate (at random, or
            # for other clients). After two such, the rate is kept (pauses are still
            # honoured) until the throttling follows the rate again.
            if self._spell_before and was < self._rate_before * 0.97:
                sent = len(self._grants) - bisect.bisect_right(self._grants, self._cut_at)
                sending_s = max(span - paused_since, rtt)
                futile = spell <= 2 * self._spell_before and low >= 0.9 * sent / sending_s
                self._futile = self._futile + 1 if futile else 0
            self._spell_before, self._rate_before = spell, was
            if self._futile >= 2:
                # Noise, not a limit: nothing changes, and the probe goes on where it was.
                self._last_cut = self._cut_at = now
                self._cut_accepted = self._accepted
                self._cut_paused = self._paused_total
                return
        guessed = self.slow_start  # slow start's exit guesses the limit; later cuts measure it
        if self.slow_start:
            # Half the rate (TCP), and no more than what the server accepted on average so
            # far, raised towards what was just sent (their geometric mean, a quarter more at
            # most): the average is low after a slow climb, the last second high after a
            # bucket's burst let the rate overshoot its limit. Then the limit is measured from
            # what the bucket accepted once empty (`_watch_window`).
            self.slow_start = False
            if self._first_throttled is not None:
                self._window = (self._first_throttled, now)
                self._window_accepted, self._window_seen = 0, self._first_throttled
            elapsed = max(now - self._started, rtt)
            average = max(self._accepted / elapsed, START_RPS)
            recent = max(self.send_rate(now, 1.0), average)
            estimate = min(was / 2.0, math.sqrt(average * recent), 1.25 * average)
            self.uncertainty = FIRST_UNCERTAINTY
            self.rate = estimate
        elif estimate is not None:
            floor = was / 4.0 if continuing else was / 2.0
            self.rate = min(max(estimate * (1.0 - MARGIN), floor), was * (1.0 - MARGIN))
        else:
            self.rate = was * 0.7
        if estimate is not None:
            self.limit = estimate
        extent = self.uncertainty
        if self.pauses and not guessed:
            # A server that pauses every sender makes each throttle cost a whole pause: above
            # a measured limit, search only a little (then the slow probe goes on).
            extent = min(extent, PAUSED_SEARCH_MAX)
        self._start_search(now, extent)
        self.rate = max(MIN_RPS, min(self.rate, self.rps_cap))
        log.debug("throttled: rate %.1f -> %.1f req/s (limit %s)", was, self.rate, self.limit)
        self._last_cut = now
        self._cut_at = now
        self._cut_accepted = self._accepted
        self._cut_paused = self._paused_total
        self._last_growth = now

    def throttling(self, now: float) -> bool:
        return now < self.paused_until or now - self.last_throttle_at < THROTTLING_SHOWN_S


class AdaptivePacer:
    """The run-wide `Pacer`: one `RateController` behind a lock, shared by every worker.

    Waiting workers queue in order (first come, first sent); only the first sleeps, until its
    slot, so a cut or a pause applies to the very next request. ``cancel`` (an Event) and
    ``deadline`` (a time on ``clock``) end every wait with False. ``rps_cap`` and
    ``concurrency_cap`` are the analyst's caps (None = find them); ``start_rps`` and
    ``start_concurrency`` where the search starts.
    """

    # How often a waiting worker looks at ``cancel`` (an Event cannot wake a Condition).
    POLL_S = 0.1

    def __init__(
        self,
        *,
        rps_cap: float | None = None,
        concurrency_cap: int | None = None,
        start_rps: float | None = None,
        start_concurrency: int = START_CONCURRENCY,
        cancel: threading.Event | None = None,
        deadline: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        random_source: Callable[[], float] = random.random,
    ) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._control = RateController(
            rps_cap=rps_cap,
            start_rps=start_rps,
            concurrency_cap=concurrency_cap,
            start_concurrency=start_concurrency,
            random_source=random_source,
            now=clock(),
        )
        self.cancel = cancel if cancel is not None else threading.Event()
        self.deadline = deadline
        self._queue: deque[threading.Condition] = deque()
        self._local = threading.local()

    # -- the Pacer protocol ------------------------------------------------------------

    def wait_turn(self) -> bool:
        """Block until a request may be sent; False once cancelled or past the deadline."""
        self._local.granted = None
        me = threading.Condition(self._lock)
        with self._lock:
            self._queue.append(me)
            try:
                while True:
                    now = self._clock()
                    if self.cancel.is_set() or (self.deadline is not None and now >= self.deadline):
                        self._local.refused = True
                        return False
                    if self._queue[0] is me:
                        ready = self._control.ready_at(now)
                        if now >= ready:
                            self._local.granted = self._control.grant(now)
                            self._local.turns = getattr(self._local, "turns", 0) + 1
                            return True
                        timeout = min(ready - now, self.POLL_S)
                        if self.deadline is not None:
                            timeout = min(timeout, max(0.0, self.deadline - now))
                    else:
                        timeout = self.POLL_S
                    me.wait(timeout)
            finally:
                self._queue.remove(me)
                if self._queue:
                    self._queue[0].notify()

    def on_answer(self, *, throttled: bool, retry_after: float | None) -> None:
        granted = getattr(self._local, "granted", None)
        self._local.granted = None
        if throttled:  # refused before anything was done: as if it had not been sent
            self._local.turns = getattr(self._local, "turns", 1) - 1
            self._local.throttles = getattr(self._local, "throttles", 0) + 1
        with self._lock:
            self._control.answered(
                self._clock(),
                granted,
                throttled=throttled,
                retry_after=retry_after,
                backlogged=bool(self._queue),
            )
            if self._queue:  # the next slot may have moved (a new rate, a pause)
                self._queue[0].notify()

    # -- what the run reads ------------------------------------------------------------

    @property
    def rps_cap(self) -> float | None:
        """The analyst's cap on requests a second (None: none)."""
        cap = self._control.rps_cap
        return None if math.isinf(cap) else cap

    @property
    def concurrency_cap(self) -> int | None:
        """The analyst's cap on rows in flight (None: found by the run)."""
        return self._control.concurrency_cap

    def take_refusal(self) -> tuple[bool, int, int]:
        """Since the last call in this thread: whether ``wait_turn`` refused a turn (that
        request was not sent), how many requests it let go that were not answered as
        throttled (those the server may have acted on), and how many were throttled; clears
        them."""
        local = self._local
        taken = (
            getattr(local, "refused", False),
            getattr(local, "turns", 0),
            getattr(local, "throttles", 0),
        )
        local.refused, local.turns, local.throttles = False, 0, 0
        return taken

    def expired(self) -> bool:
        """True once the run's deadline has passed."""
        return self.deadline is not None and self._clock() >= self.deadline

    def concurrency(self) -> int:
        """Rows the run may have in flight now."""
        with self._lock:
            return self._control.concurrency(self._clock())

    def state(self) -> PaceState:
        """The pace now, for progress."""
        with self._lock:
            c = self._control
            now = self._clock()
            return PaceState(
                rate=min(c.rate, c.rps_cap),
                sent_per_s=c.send_rate(now, 2.0),
                limit=c.limit if not c.slow_start else None,
                throttling=c.throttling(now),
                paused_s=max(0.0, c.paused_until - now),
                throttled=c.throttled,
                answers=c.answers,
                concurrency=c.concurrency(now),
                deadline_s=None if self.deadline is None else max(0.0, self.deadline - now),
            )
