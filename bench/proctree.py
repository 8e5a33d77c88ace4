"""CPU time of a process and all its descendants, from /proc: what a server spent, whatever runs it.

Each process's ``utime + stime`` (every thread) plus ``cutime + cstime`` (children it has
already reaped), summed over the live tree. Clock ticks are 10 ms, so batches are sized to
spend seconds of CPU.
"""

from __future__ import annotations

import os
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    return text[text.rindex(")") + 2:].split()


def tree(root: int) -> list[int]:
    """``root`` and every live descendant."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat(int(entry))
            if fields is not None:
                children.setdefault(int(fields[1]), []).append(int(entry))
    found, stack = [], [root]
    while stack:
        pid = stack.pop()
        found.append(pid)
        stack.extend(children.get(pid, []))
    return found


def cpu_seconds(root: int) -> float:
    """User + system CPU seconds of the tree under ``root`` (fields 14-17 of /proc/pid/stat)."""
    total = 0
    for pid in tree(root):
        fields = _stat(pid)
        if fields is not None:  # fields[0] is field 3 (state): utime is field 14 -> index 11
            total += sum(int(value) for value in fields[11:15])
    return total / TICK


def machine_busy_seconds() -> float:
    """CPU seconds every core of the machine spent not idle (first line of /proc/stat)."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:8]]
    return (sum(fields) - fields[3] - fields[4]) / TICK  # all but idle and iowait


def load_average() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]
