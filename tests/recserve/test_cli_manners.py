"""How ``recserve`` behaves as a Unix command: a light ``--help``, exit status 1 for a failure and
2 for a usage error with one line on stderr, and ``--json`` output that is the JSON alone on stdout
(checked in a real process, so anything printed at file-descriptor level would show up)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from model_store import LocalStore
from recserve import commands
from recserve.cli import main

ROOT = Path(__file__).resolve().parents[2]
TESTS = ROOT / "tests"


def python(code: str, *argv: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter on this checkout (as the console script would)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(TESTS)])}
    return subprocess.run(
        [sys.executable, "-c", code, *argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


HELP_PROBE = """
import contextlib, io, sys
from recserve.cli import build_parser
for argv in ([], ["train"], ["store"], ["store", "list"], ["reproduce", "health"], ["reproduce", "ml100k"],
             ["precompute"], ["bench"], ["serve"], ["demo"]):
    with contextlib.redirect_stdout(io.StringIO()) as out:
        try:
            build_parser().parse_args([*argv, "--help"])
        except SystemExit as exc:
            assert exc.code == 0, argv
    assert "usage: recserve" in out.getvalue(), argv
print(sorted(m for m in ("torch", "faiss", "fastapi", "redis", "boto3") if m in sys.modules))
"""


def test_help_does_not_import_torch() -> None:
    proc = python(HELP_PROBE)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.replace("'", '"')) == []


# `recserve train` with the session's small data and fast settings instead of the 2,000-user default.
SMALL_TRAIN = """
import sys
import training.datasets
from conftest import FAST, SMALL
from training.synthetic import generate
training.datasets.load = lambda name, seed=0, loss="slatk", k=20: (generate(SMALL), FAST)
from recserve.cli import main
raise SystemExit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_train_json_is_alone_on_stdout_and_publish_creates_the_store(tmp_path: Path) -> None:
    store = tmp_path / "new" / "store"  # does not exist yet: publishing creates it
    proc = python(SMALL_TRAIN, "train", "--store", str(store), "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    body = json.loads(proc.stdout)  # what `recserve train --json | jq .` reads
    assert set(body) == {"version", "metrics"}
    assert 0 <= body["metrics"]["two_stage"]["recall@10"] <= 1
    assert f"published {body['version']} to {store}" in proc.stderr
    assert "recall@10" in proc.stderr  # the human table went to stderr
    assert LocalStore(store).current_version() == body["version"]


@pytest.mark.slow
def test_bench_json_is_alone_on_stdout(tmp_path: Path) -> None:
    argv = ["bench", "--items", "400", "--users", "60", "--parts", "retrieval", "--queries", "20"]
    argv += ["--ef", "16", "--cache-dir", str(tmp_path / "cache"), "--json"]
    proc = python("from recserve.cli import main; import sys; raise SystemExit(main(sys.argv[1:]))", *argv)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout)
    assert 0 <= results["retrieval"]["400"]["recall@100"] <= 1
    assert "| measure |" in proc.stderr


@pytest.mark.parametrize(
    "argv, option",
    [
        (["train", "--k", "0"], "--k"),
        (["train", "--dataset", "nope"], "--dataset"),
        (["store", "gc", "--keep", "x"], "--keep"),
        (["bench", "--items", "0"], "--items"),
        (["nope"], "invalid choice"),
    ],
)
def test_usage_errors_exit_2_naming_the_option(argv: list[str], option: str, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2 and option in capsys.readouterr().err


def test_a_usage_error_found_after_parsing_exits_2(capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RECSERVE_REDIS_URL", raising=False)
    assert main(["bench", "--items", "400", "--cache"]) == 2
    err = capsys.readouterr().err
    assert err == "recserve bench: error: --cache needs --redis-url or RECSERVE_REDIS_URL\n"


def test_missing_data_is_a_runtime_error_naming_the_folder(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("RECSERVE_DATA_DIR", str(tmp_path / "nowhere"))
    assert main(["train", "--dataset", "ml100k", "--store", str(tmp_path / "store")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("recserve train: error: ") and str(tmp_path / "nowhere") in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "store").exists()


@pytest.mark.parametrize(
    "exc, line",
    [
        (
            FileNotFoundError(2, "No such file or directory", "/data/u.data"),
            "/data/u.data: No such file or directory",
        ),
        (
            ValueError("u.data:12: rating must be an integer, got 'x'"),
            "u.data:12: rating must be an integer, got 'x'",
        ),
        (commands.CLIError("cannot reach Redis at redis://h:1"), "cannot reach Redis at redis://h:1"),
    ],
)
def test_expected_failures_are_one_line_exit_1(exc: Exception, line: str, capsys, monkeypatch) -> None:
    def fail(args: object) -> int:
        raise exc

    monkeypatch.setattr(commands, "train", fail)
    assert main(["train"]) == 1
    assert capsys.readouterr().err == f"recserve train: error: {line}\n"


def test_a_bug_keeps_its_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    def bug(args: object) -> int:
        raise KeyError("internal")

    monkeypatch.setattr(commands, "train", bug)
    with pytest.raises(KeyError, match="internal"):
        main(["train"])
