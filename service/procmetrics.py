"""``process_*`` for a server of several worker processes (``recserve serve --workers N``).

prometheus-client's ``ProcessCollector`` reads the process that answers the scrape: with N
workers, one random worker's CPU and memory, which would mislead, so the multiprocess mode left
``process_*`` out and the Grafana panel "Resident memory and CPU per instance" went empty. Here
the same two families describe the whole server instead, whichever worker answers:

* ``process_cpu_seconds_total``: user + system CPU of the supervisor (this worker's parent) and
  every process under it (the workers, multiprocessing's resource tracker), from ``/proc``;
* ``process_resident_memory_bytes``: the sum of their proportional set sizes (PSS, from
  ``/proc/PID/smaps_rollup``): a page shared by k processes counts 1/k in each, so the mapped
  bundle the workers share counts once, and the sum is the memory the server holds. Where
  ``smaps_rollup`` cannot be read (kernels before 4.14), RSS from ``statm``.

A process that exits while being read is skipped. Linux only; elsewhere the families have no
sample. Reading costs about a millisecond per scrape.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

PROC = Path("/proc")


def process_tree(root: int, proc: Path = PROC) -> list[int]:
    """``root`` and all its descendants, from ``/proc/PID/task/TID/children``."""
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        try:
            for task in (proc / str(pid) / "task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return out


def cpu_seconds(pid: int, proc: Path = PROC) -> float:
    stat = (proc / str(pid) / "stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "; comm may hold spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def memory_bytes(pid: int, proc: Path = PROC) -> int:
    """PSS of ``pid``, or its RSS where the kernel has no ``smaps_rollup``."""
    try:
        for line in (proc / str(pid) / "smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except FileNotFoundError:
        pass
    return int((proc / str(pid) / "statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class ServerProcesses(Collector):
    """CPU and memory of the server this worker belongs to: its parent and all its descendants."""

    def __init__(self, root: Callable[[], int] = os.getppid, proc: Path = PROC) -> None:
        self.root = root
        self.proc = proc

    def collect(self) -> Iterable[Metric]:
        cpu = CounterMetricFamily(
            "process_cpu_seconds",
            "CPU seconds of the whole server: the supervisor and all its worker processes.",
        )
        memory = GaugeMetricFamily(
            "process_resident_memory_bytes",
            "Memory of the whole server: the sum of its processes' proportional set sizes "
            "(pages they share count once).",
        )
        if self.proc.is_dir():
            total_cpu, total_memory = 0.0, 0
            for pid in process_tree(self.root(), self.proc):
                try:
                    total_cpu += cpu_seconds(pid, self.proc)
                    total_memory += memory_bytes(pid, self.proc)
                except (OSError, ValueError, IndexError):
                    continue  # exited meanwhile
            cpu.add_metric([], total_cpu)
            memory.add_metric([], float(total_memory))
        yield cpu
        yield memory
