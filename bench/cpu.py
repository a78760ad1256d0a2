"""CPU-seconds spent by each process of a running `honcho-grpc up`: the server (with its
embedder), the worker and PostgreSQL (every backend, the ones that already exited included).
On a shared machine these hold better than wall-clock times: divide by the messages written
to compare runs made under different loads."""

from __future__ import annotations

import psutil

ROLES = ("server", "worker", "postgres")


def _seconds(times: psutil._common.pcputimes, children: bool = False) -> float:
    total = times.user + times.system
    if children:  # processes already reaped (PostgreSQL backends that ended)
        total += times.children_user + times.children_system
    return float(total)


def snapshot(server_pid: int) -> dict[str, float]:
    """Cumulative CPU-seconds by role, for the process tree under `server_pid`."""
    out = dict.fromkeys(ROLES, 0.0)
    try:
        root = psutil.Process(server_pid)
        out["server"] = _seconds(root.cpu_times())
        children = root.children(recursive=True)
    except psutil.Error:
        return out
    for proc in children:
        try:
            name = proc.name()
            times = proc.cpu_times()
            if name.startswith("postgres"):
                # The postmaster counts the backends it reaped; live ones count themselves.
                parent = proc.parent()
                is_postmaster = parent is not None and not parent.name().startswith("postgres")
                out["postgres"] += _seconds(times, children=is_postmaster)
            elif "worker" in " ".join(proc.cmdline()):
                out["worker"] += _seconds(times)
            else:
                out["server"] += _seconds(times)
        except psutil.Error:
            continue
    return out


def per_thousand(before: dict[str, float], after: dict[str, float],
                 messages: int) -> dict[str, float]:
    """CPU-seconds per 1,000 messages by role between two snapshots."""
    return {role: round((after[role] - before[role]) * 1000 / messages, 2) for role in ROLES}
