"""Open files for the load generator: each user's keep-alive connection is one, so 10,000 users need
about 10,050 in one process. Every runner process lifts its soft limit to the hard one (as Locust's own
command line does, and the service's workers); before a run, `shortfall` says whether the hard limit
leaves room for each process's share and which --processes would."""

from __future__ import annotations

import contextlib
import resource

OVERHEAD = 50  # files a generator process holds besides its connections (measured: 17 to 27)


def lift() -> int:
    """Raise this process's soft limit to its hard one; the soft limit after (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        with contextlib.suppress(ValueError, OSError):  # a kernel cap below it (nr_open): run with what there is
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def hard_limit() -> int | None:
    """The most open files a process started from here may have; None: no limit."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return None if hard == resource.RLIM_INFINITY else int(hard)


def shortfall(what: str, connections: int, processes: int, limit: int | None) -> str | None:
    """Why `connections` (users, or the open model's in-flight cap: `what` names them) shared by
    `processes` generator processes do not fit under `limit` open files per process; None when they do
    (pure). Parameters are written `name` (ParamError words them as the command's options)."""
    processes = max(1, processes)
    need = -(-connections // processes) + OVERHEAD
    if limit is None or need <= limit:
        return None
    hint = "raise the hard limit (ulimit -Hn; LimitNOFILE= under systemd)"
    if limit > OVERHEAD:
        fits = -(-connections // (limit - OVERHEAD))
        hint = f"use `processes` {fits} (or more), or {hint}"
    share = f"each of the {processes} generator processes" if processes > 1 else "the generator process"
    return (f"{what}: {share} needs about {need:,} open files (one per connection, plus "
            f"{OVERHEAD}), and the hard limit here is {limit:,} per process: {hint}")
