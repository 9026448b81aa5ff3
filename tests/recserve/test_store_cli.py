"""``recserve store …`` on a local store: exit codes and what the operator reads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bundle_faults import damage

from model_store import LocalStore
from model_store.manifest import new_version_id
from model_store.store import clone_model
from recommender.model import RecommenderModel
from recserve.cli import main


@pytest.fixture
def store3(tmp_path: Path, trained: tuple[RecommenderModel, dict]) -> tuple[LocalStore, list[str]]:
    store = LocalStore(tmp_path / "store")
    model, metrics = trained
    versions = [store.publish(clone_model(model, new_version_id()), metrics=metrics) for _ in range(3)]
    return store, versions


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_list_marks_current_and_previous(store3, capsys) -> None:
    store, (a, b, c) = store3
    code, out, _ = run(capsys, "store", "--store", str(store.root), "list")
    assert code == 0
    lines = out.splitlines()
    assert any(line.startswith("current") and c in line for line in lines)
    assert any(line.startswith("previous") and b in line for line in lines)
    code, out, _ = run(capsys, "store", "list", "--json", "--store", str(store.root))
    listing = json.loads(out.splitlines()[-1])
    assert listing["current"] == c and listing["previous"] == b
    assert [r["version"] for r in listing["versions"]] == [a, b, c]


def test_store_uri_defaults_to_the_setting(store3, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    store, versions = store3
    monkeypatch.setenv("RECSERVE_STORE_URI", str(store.root))
    code, out, _ = run(capsys, "store", "verify")
    assert code == 0 and out.startswith(f"{versions[-1]}: ok")


def test_show_prints_the_manifest(store3, capsys) -> None:
    store, (a, _, _) = store3
    code, out, _ = run(capsys, "store", "--store", str(store.root), "show", a)
    assert code == 0
    assert json.loads(out)["version"] == a


def test_verify_names_the_bad_file(store3, capsys) -> None:
    store, (a, b, _) = store3
    damage(store.bundle_path(b), "truncated")
    code, out, _ = run(capsys, "store", "--store", str(store.root), "verify", a)
    assert code == 0 and "ok" in out
    code, _, err = run(capsys, "store", "--store", str(store.root), "verify", b)
    assert code != 0
    assert str(store.bundle_path(b) / "index.faiss") in err and "size" in err
    code, _, err = run(capsys, "store", "--store", str(store.root), "verify", "--all")
    assert code != 0 and "index.faiss" in err


@pytest.mark.parametrize("fault", ["missing_file", "missing_manifest", "schema", "checksum"])
def test_verify_fails_on_each_kind_of_damage(store3, capsys, fault: str) -> None:
    store, (_, _, c) = store3
    bad = damage(store.bundle_path(c), fault)
    code, _, err = run(capsys, "store", "--store", str(store.root), "verify")
    assert code == 2
    assert bad in err
    assert "Traceback" not in err


def test_promote_rollback_gc(store3, capsys) -> None:
    store, (a, b, c) = store3
    assert run(capsys, "store", "--store", str(store.root), "promote", a)[0] == 0
    assert store.current_version() == a
    code, out, _ = run(capsys, "store", "--store", str(store.root), "rollback")
    assert code == 0 and c in out and store.current_version() == c
    # rollback undid the promote: history is a, b, c again, so previous is b
    code, out, _ = run(capsys, "store", "--store", str(store.root), "gc", "--keep", "1")
    assert code == 0 and out.splitlines()[0] == f"deleted {a}"
    # current (c) and previous (b) survive keep=0 too
    assert run(capsys, "store", "--store", str(store.root), "gc", "--keep", "0")[0] == 0
    assert store.list_versions() == [b, c]


def test_errors_are_one_line_not_tracebacks(store3, capsys, tmp_path: Path) -> None:
    store, _ = store3
    code, _, err = run(capsys, "store", "--store", str(store.root), "show", "no-such-version")
    assert code == 2 and "no-such-version" in err and "Traceback" not in err
    code, _, err = run(capsys, "store", "--store", str(tmp_path / "empty"), "rollback")
    assert code == 2 and "nothing to roll back" in err
    code, _, err = run(capsys, "store", "--store", str(tmp_path / "empty"), "verify")
    assert code == 2 and "no model published" in err
    code, _, err = run(capsys, "store", "--store", "gs://x/y", "list")
    assert code == 2 and "unsupported store URI" in err
