"""The open-model generator inside Locust (imports gevent/locust: runner subprocess only).

One `OpenModelDriver` user runs per generator process. It walks its share of the arrival schedule
(arrivals k = index, index+n, ...), starts each arrival in its own greenlet at the intended time
and runs one task of the locustfile's users there; an arrival that finds `cap` requests already in
flight is counted as dropped, never delayed. `install_recording` makes every request event carry
the time since the arrival's *intended* start, so a stalled server shows in the percentiles (no
coordinated omission) - in results.json and in Locust's own CSVs as well.
"""

from __future__ import annotations

import errno
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import gevent
from gevent import getcurrent
from locust import User
from locust.exception import InterruptTaskSet, RescheduleTask, RescheduleTaskImmediately, StopUser

from opskit.loadtest.arrivals import TICK_MIN, RateStage, auto_tick, intended_times
from opskit.loadtest.health import OUT_OF_FILES
from opskit.loadtest.recorder import Recorder

log = logging.getLogger("opskit.loadtest")
clock = time.perf_counter

_intended: dict[Any, float] = {}  # greenlet -> intended start of the arrival it runs


@dataclass
class DriverState:
    stages: Sequence[RateStage] = ()
    index: int = 0
    n: int = 1
    cap: int = 100
    recorder: Recorder | None = None
    user_classes: list[type[User]] = field(default_factory=list)
    stopping: bool = False
    finished: bool = False
    grace_s: float = 10.0
    tick_s: float | None = None  # scheduling resolution (arrivals due within one tick go out together); None: auto




STATE = DriverState()


def failure_kind(exc: BaseException | None, response: Any) -> str:
    status = getattr(response, "status_code", None) or 0
    if status >= 400:
        return f"http_{status}"
    named = getattr(exc, "failure_kind", None)  # e.g. locustenv.HostNotDeclared: its own clear name
    if isinstance(named, str):
        return named
    original = getattr(exc, "original", None)  # geventhttpclient's RetriesExceeded wraps what happened
    if isinstance(original, BaseException):
        exc = original
    if isinstance(exc, OSError) and exc.errno == errno.EMFILE:
        return OUT_OF_FILES
    name = type(exc).__name__ if exc is not None else "error"
    lowered = name.lower()
    if "timeout" in lowered or "timedout" in lowered:
        return "timeout"
    if "refused" in lowered:
        return "connection_refused"
    if "reset" in lowered:
        return "connection_reset"
    if name in ("CatchResponseError", "ResponseError"):
        return "check_failed"
    return lowered


def install_recording(env: Any) -> None:
    """Wrap the request event so every request is recorded (HDR) and timed from its intended start.

    One wrapper around Locust's fire (not a listener): it must change response_time before Locust's
    own listeners see it, so its CSVs agree with results.json. This runs once per request, so it
    keeps to locals, one dict pop and a list append (the histogram is built once per second)."""
    hook = env.events.request
    if getattr(hook, "_opskit", False):
        return
    original = hook.fire
    pop = _intended.pop
    names: dict[Any, dict[Any, str]] = {}  # request_type -> name -> "TYPE name" (no string built per request)

    def fire(*, reverse: bool = False, **kw: Any) -> None:
        now = clock()
        t0 = pop(getcurrent(), None)
        rt = kw.get("response_time") or 0.0
        if t0 is not None:
            # later requests of the same arrival are timed from their own start
            since = (now - t0) * 1000.0
            if since > rt:
                kw["response_time"] = rt = since
        rec = STATE.recorder
        if rec is not None:
            rtype, name = kw.get("request_type"), kw.get("name")
            by_name = names.get(rtype)
            if by_name is None:
                by_name = names[rtype] = {}
            key = by_name.get(name)
            if key is None:
                # a name that already starts with its method ("GET /api/x", as in the spec's slos) is kept
                key = by_name[name] = str(name) if str(name).startswith(f"{rtype} ") else f"{rtype} {name}"
            exc = kw.get("exception")
            rec.record(key, rt, None if exc is None else failure_kind(exc, kw.get("response")), now)
        original(reverse=reverse, **kw)

    hook.fire = fire
    hook._opskit = True


def check_open_compatible(classes: Sequence[type[User]]) -> None:
    from locust import TaskSet

    for cls in classes:
        if not cls.tasks:
            raise ValueError(f"user class {cls.__name__} has no tasks")
        for task in cls.tasks:
            if isinstance(task, type) and issubclass(task, TaskSet):
                raise ValueError(f"{cls.__name__} uses a TaskSet ({task.__name__}); the open model runs "
                                 "function tasks (@task methods) - use --users for the closed model")


def _never(user: User) -> None:  # Locust wants every user class to have a task; run() replaces the loop
    raise StopUser()


class OpenModelDriver(User):
    """Runs arrivals; not a simulated user itself."""

    abstract = False
    fixed_count = 0
    weight = 1
    tasks = [_never]

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        self._instances = [cls(environment) for cls in STATE.user_classes]
        self._weights = [max(getattr(cls, "weight", 1), 0) or 1 for cls in STATE.user_classes]

    def run(self) -> None:  # type: ignore[misc]  # replaces Locust's task loop (final only by convention)
        st = STATE
        rec = st.recorder
        assert rec is not None
        for inst in self._instances:
            try:
                inst.on_start()
            except Exception as exc:  # the locustfile's bug: stop the run with its message, do not hang
                log.error("on_start of %s failed: %r", type(inst).__name__, exc)
                self.environment.events.user_error.fire(user_instance=self, exception=exc, tb=exc.__traceback__)
                st.finished = True
                return
        rec.t0 = clock()  # the schedule starts now (after on_start), not when the process was told to
        instances, weights = self._instances, self._weights
        single = instances[0] if len(instances) == 1 else None
        only_task = single.tasks[0] if single is not None and len(single.tasks) == 1 else None
        t0 = rec.t0
        auto = st.tick_s is None
        tick = TICK_MIN if auto else float(st.tick_s)  # type: ignore[arg-type]
        rec.cap = st.cap
        slots = _Slots(rec)
        handoff, arrival, choice, choices = slots.run, rec.arrival, random.choice, random.choices
        sleep = gevent.sleep
        since_yield = 0
        prev = 0.0
        try:
            for t_rel in intended_times(st.stages, offset=st.index, step=st.n):
                if st.stopping:
                    break
                due = t0 + t_rel
                delay = due - clock()
                if delay > tick:  # sparse arrivals: wake exactly on time
                    sleep(delay)
                    since_yield = 0
                elif delay > 0:
                    # dense arrivals: wake on a grid, so those due in the same step go out together
                    # and their sockets are served in one event-loop pass (at most one step late, and
                    # measured so: latency counts from the intended start)
                    grid = auto_tick(t_rel - prev) if auto else tick
                    sleep(delay + (-t_rel) % grid)
                    since_yield = 0
                else:
                    since_yield += 1
                    if since_yield >= 64:  # behind schedule: still let in-flight requests progress
                        sleep(0)
                        since_yield = 0
                prev = t_rel
                now = clock()
                if not arrival(now, now - due):  # max_in_flight reached: dropped, never delayed
                    continue
                if only_task is not None:  # one user class with one task: no random draw
                    handoff(instances[0], only_task, due)
                else:
                    inst = single or choices(instances, weights)[0]
                    handoff(inst, choice(inst.tasks), due)
            _wait_in_flight(rec, st.grace_s)
        finally:
            slots.close()
            st.finished = True
            for inst in instances:
                try:
                    inst.on_stop()
                except Exception as exc:
                    log.error("on_stop of %s failed: %r", type(inst).__name__, exc)


_task_errors = [0, 0]  # since the last report, logged so far


def rec_errors(n: int) -> None:
    _task_errors[0] += n


def take_task_errors() -> int:
    n, _task_errors[0] = _task_errors[0], 0
    return n


class _Slots:
    """Greenlets kept for arrivals: handing an arrival to a parked one costs a loop callback and a
    switch (~3 us), where a new greenlet per arrival costs ~20 us, a tenth of a request's CPU."""

    def __init__(self, rec: Recorder) -> None:
        self.rec = rec
        self.free: list[Any] = []
        self.hub = gevent.get_hub()
        self._callback = self.hub.loop.run_callback

    def run(self, inst: User, task: Any, due: float) -> None:
        free = self.free
        if free:
            self._callback(free.pop().switch, (inst, task, due))
        else:
            from greenlet import greenlet

            self._callback(greenlet(self._slot, parent=self.hub).switch, (inst, task, due))

    def _slot(self, item: tuple[User, Callable[[User], Any], float] | None) -> None:
        me = getcurrent()
        rec, park, free = self.rec, self.hub.switch, self.free
        try:
            while item is not None:
                _arrival(item[0], item[1], item[2], rec)
                free.append(me)
                item = park()  # parked until run() hands over the next arrival
        except BaseException:  # noqa: S110 - a raw greenlet must never raise into the hub
            pass

    def close(self) -> None:
        free = self.free[:]
        self.free.clear()  # in place: the slots hold this list
        for g in free:
            self.hub.loop.run_callback(g.switch, None)


def _arrival(inst: User, task: Callable[[User], Any], due: float, rec: Recorder) -> None:
    """One arrival, already counted in flight by Recorder.arrival."""
    g = getcurrent()
    _intended[g] = due
    try:
        task(inst)
    except (StopUser, InterruptTaskSet, RescheduleTask, RescheduleTaskImmediately, gevent.GreenletExit):
        pass
    except Exception as exc:
        rec_errors(1)
        if _task_errors[1] < 5:  # the first few, so locust.log says what the locustfile got wrong
            _task_errors[1] += 1
            log.warning("task %s raised %r", getattr(task, "__name__", task), exc)
    finally:
        _intended.pop(g, None)
        rec.finished()


def _wait_in_flight(rec: Recorder, grace_s: float) -> None:
    deadline = clock() + grace_s
    while rec.in_flight > 0 and clock() < deadline:
        gevent.sleep(0.05)
