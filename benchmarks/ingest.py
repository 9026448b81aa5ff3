"""Reading your own data at scale: ``python -m benchmarks.ingest --rows 10000000``.

Writes a synthetic power-law interaction log (``--users`` × ``--items``, Zipf item popularity,
epoch-second times) as CSV, gzip CSV, Parquet and JSON Lines into a temporary folder, then
measures, each in a fresh process so peak RSS is that step's own:

* ``read``: the file to id codes, times and weights (``training.ingest.log.read_log``: Arrow's
  reader, UTF-8 and empty-id checks, dictionary-encoding the ids, parsing the times);
* ``inspect``: what ``recserve data inspect`` does (read, collapse duplicates, profile);
* ``load``: what ``recserve train --interactions`` does before training (read, collapse, sort by
  time, split per user, build the training arrays, hash the file for the manifest).

Prints one line per (format, step) with seconds, rows/s and peak RSS, then the rows as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def write_log(folder: Path, rows: int, users: int, items: int, seed: int = 0) -> dict[str, Path]:
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    table = pa.table(
        {
            "user_id": pa.array(rng.integers(0, users, rows)).cast(pa.string()),
            "item_id": pa.array(rng.zipf(1.2, rows) % items).cast(pa.string()),
            "timestamp": 1_600_000_000 + rng.integers(0, 10**8, rows),
        }
    )
    paths = {
        "csv": folder / "log.csv",
        "csv.gz": folder / "log.csv.gz",
        "parquet": folder / "log.parquet",
        "jsonl": folder / "log.jsonl",
    }
    pacsv.write_csv(table, paths["csv"])
    with pa.CompressedOutputStream(str(paths["csv.gz"]), "gzip") as out:
        pacsv.write_csv(table, out)
    pq.write_table(table, paths["parquet"])
    # pyarrow writes no JSON: one line per row, built with Arrow string kernels (no Python loop)
    parts = ['{"user_id": "', table["user_id"], '", "item_id": "', table["item_id"], '", "timestamp": ']
    lines = pc.binary_join_element_wise(*parts, table["timestamp"].cast(pa.string()), "}\n", "")
    with open(paths["jsonl"], "wb") as out:
        for chunk in lines.chunks:  # the chunk's character data is the lines back to back
            offsets = np.frombuffer(chunk.buffers()[1], np.int32)[
                chunk.offset : chunk.offset + len(chunk) + 1
            ]
            out.write(memoryview(chunk.buffers()[2])[offsets[0] : offsets[-1]])
    return paths


def run_step(path: str, step: str) -> dict[str, float]:
    """One measurement in this process (called in a child by :func:`main`)."""
    from training.ingest.build import DataSpec, load_interactions
    from training.ingest.log import read_log
    from training.ingest.profile import inspect_file

    spec = DataSpec(path)
    start = time.perf_counter()
    if step == "read":
        rows = read_log(spec.interactions, spec.columns, spec.time_required, progress=False).n_rows
    elif step == "inspect":
        rows = inspect_file(spec, progress=False)["rows"]
    else:
        rows = load_interactions(spec, progress=False)[1]["rows"]
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"rows": rows, "seconds": round(seconds, 2), "peak_rss_mb": round(peak_mb)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--users", type=int, default=200_000)
    p.add_argument("--items", type=int, default=1_000_000)
    p.add_argument(
        "--formats", default="csv,csv.gz,parquet,jsonl", help="comma-separated (default: all four)"
    )
    p.add_argument("--step", choices=["read", "inspect", "load"], help=argparse.SUPPRESS)
    p.add_argument("--file", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.step:
        print(json.dumps(run_step(args.file, args.step)))
        return 0
    results = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="recserve-ingest-") as tmp:
        paths = write_log(Path(tmp), args.rows, args.users, args.items)
        # Flush the files just written: the kernel writing back a gigabyte of dirty pages in the
        # background would otherwise slow whichever step runs first.
        os.sync()
        load = " ".join(f"{x:.1f}" for x in os.getloadavg())
        print(
            f"wrote {args.rows:,} rows in {time.perf_counter() - started:.0f} s; load average {load}",
            flush=True,
        )
        for fmt in args.formats.split(","):
            path = paths[fmt]
            size_mb = path.stat().st_size / 2**20
            for step in ("read", "inspect", "load"):
                cmd = [sys.executable, "-m", "benchmarks.ingest", "--step", step, "--file", str(path)]
                out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
                r = {"format": fmt, "file_mb": round(size_mb), "step": step, **json.loads(out)}
                results.append(r)
                print(
                    f"{fmt:<8} {size_mb:>7.0f} MB  {step:<8} {r['seconds']:>7.2f} s  "
                    f"{r['rows'] / r['seconds']:>12,.0f} rows/s  peak RSS {r['peak_rss_mb']:>6} MB",
                    flush=True,
                )
    print(markdown(results))
    print(json.dumps(results))
    return 0


def markdown(results: list[dict[str, Any]]) -> str:
    """One row per format: file size, seconds per step, rows/s of the whole load, peak RSS."""
    lines = [
        "| format | file MB | read s | inspect s | load s (train-ready) | rows/s (load) "
        "| peak RSS MB read / load |",
        "|---|---|---|---|---|---|---|",
    ]
    by_format: dict[str, dict[str, dict[str, Any]]] = {}
    for r in results:
        by_format.setdefault(r["format"], {})[r["step"]] = r
    for fmt, s in by_format.items():
        load = s["load"]
        lines.append(
            f"| {fmt} | {load['file_mb']:,} | {s['read']['seconds']:.1f} | {s['inspect']['seconds']:.1f} | "
            f"{load['seconds']:.1f} | {load['rows'] / load['seconds']:,.0f} | "
            f"{s['read']['peak_rss_mb']:,} / {load['peak_rss_mb']:,} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
