"""process_* of a multi-worker server (service/procmetrics.py), on a /proc laid out in tmp."""

from __future__ import annotations

import os
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from service.procmetrics import ServerProcesses

TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def _process(proc: Path, pid: int, children: list[int], utime: int, stime: int, pss_kb: int | None) -> None:
    """One /proc/PID as the kernel writes it (the fields read: stat, smaps_rollup, statm, children)."""
    d = proc / str(pid)
    (d / "task" / str(pid)).mkdir(parents=True)
    (d / "task" / str(pid) / "children").write_text(" ".join(map(str, children)) + (" " if children else ""))
    # comm with a space and a ')' in it: fields are counted from the last ')'
    after = ["S", "1", str(pid), str(pid), "0", "-1", "4194304", "0", "0", "0", "0", str(utime), str(stime)]
    (d / "stat").write_text(f"{pid} (py worker) x) " + " ".join(after + ["0"] * 30) + "\n")
    (d / "statm").write_text(f"50000 {7 * pid} 1000 1 0 2000 0\n")
    if pss_kb is not None:
        (d / "smaps_rollup").write_text(f"00400000-7fff [rollup]\nRss:  99999 kB\nPss:  {pss_kb} kB\n")


def _values(collector: ServerProcesses) -> dict[str, float]:
    registry = CollectorRegistry()
    registry.register(collector)
    text = generate_latest(registry).decode()
    return {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}


def test_the_whole_tree_is_summed(tmp_path: Path) -> None:
    # supervisor 10 → workers 11, 12; worker 12 → a helper 13 without smaps_rollup (old kernel)
    _process(tmp_path, 10, [11, 12], utime=2 * TICK, stime=TICK, pss_kb=1000)
    _process(tmp_path, 11, [], utime=5 * TICK, stime=0, pss_kb=300_000)
    _process(tmp_path, 12, [13], utime=4 * TICK, stime=TICK, pss_kb=200_000)
    _process(tmp_path, 13, [], utime=0, stime=TICK, pss_kb=None)
    _process(tmp_path, 99, [], utime=100 * TICK, stime=0, pss_kb=5)  # not ours
    got = _values(ServerProcesses(root=lambda: 10, proc=tmp_path))
    assert got["process_cpu_seconds_total"] == 2 + 1 + 5 + 4 + 1 + 1
    assert got["process_resident_memory_bytes"] == (1000 + 300_000 + 200_000) * 1024 + 7 * 13 * PAGE


def test_a_process_gone_while_read_is_skipped(tmp_path: Path) -> None:
    _process(tmp_path, 10, [11, 12], utime=TICK, stime=0, pss_kb=10)
    _process(tmp_path, 11, [], utime=TICK, stime=0, pss_kb=20)  # 12 exited: listed, no /proc entry
    got = _values(ServerProcesses(root=lambda: 10, proc=tmp_path))
    assert got == {"process_cpu_seconds_total": 2.0, "process_resident_memory_bytes": 30 * 1024.0}


def test_without_proc_no_sample(tmp_path: Path) -> None:
    assert _values(ServerProcesses(root=lambda: 10, proc=tmp_path / "absent")) == {}
