"""``recserve store …`` on every store backend: exit codes, what the operator reads, ``--json``."""

from __future__ import annotations

import json

import pytest
from store_backends import StoreUnderTest

from model_store import ModelStore
from model_store.manifest import new_version_id
from model_store.store import clone_model
from recommender.model import RecommenderModel
from recserve.cli import main


@pytest.fixture
def store3(
    store_backend: StoreUnderTest, trained: tuple[RecommenderModel, dict]
) -> tuple[StoreUnderTest, ModelStore, list[str]]:
    store = store_backend.open()
    model, metrics = trained
    versions = [store.publish(clone_model(model, new_version_id()), metrics=metrics) for _ in range(3)]
    return store_backend, store, versions


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_list_marks_current_and_previous(store3, capsys) -> None:
    backend, _, (a, b, c) = store3
    code, out, _ = run(capsys, "store", "--store", backend.uri, "list")
    assert code == 0
    lines = out.splitlines()
    assert any(line.startswith("current") and c in line for line in lines)
    assert any(line.startswith("previous") and b in line for line in lines)
    code, out, err = run(capsys, "store", "list", "--json", "--store", backend.uri)
    listing = json.loads(out)  # the whole of stdout: the table went to stderr
    assert listing["current"] == c and listing["previous"] == b
    assert [r["version"] for r in listing["versions"]] == [a, b, c]
    assert c in err


def test_store_uri_defaults_to_the_setting(store3, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    backend, _, versions = store3
    monkeypatch.setenv("RECSERVE_STORE_URI", backend.uri)
    code, out, _ = run(capsys, "store", "verify")
    assert code == 0 and out.startswith(f"{versions[-1]}: ok")


def test_show_prints_the_manifest(store3, capsys) -> None:
    backend, _, (a, _, _) = store3
    code, out, _ = run(capsys, "store", "--store", backend.uri, "show", a)
    assert code == 0
    assert json.loads(out)["version"] == a
    code, out, _ = run(capsys, "store", "show", a, "--json", "--store", backend.uri)
    assert code == 0 and json.loads(out)["version"] == a


def test_verify_names_the_bad_file(store3, capsys) -> None:
    backend, _, (a, b, _) = store3
    backend.damage(b, "truncated")
    code, out, _ = run(capsys, "store", "--store", backend.uri, "verify", a)
    assert code == 0 and "ok" in out
    code, _, err = run(capsys, "store", "--store", backend.uri, "verify", b)
    assert code == 1
    assert backend.file_uri(b, "index.faiss") in err and "size" in err
    code, _, err = run(capsys, "store", "--store", backend.uri, "verify", "--all")
    assert code == 1 and "index.faiss" in err


@pytest.mark.parametrize("fault", ["missing_file", "missing_manifest", "schema", "checksum"])
def test_verify_fails_on_each_kind_of_damage(store3, capsys, fault: str) -> None:
    backend, _, (_, _, c) = store3
    bad = backend.damage(c, fault)
    code, out, err = run(capsys, "store", "--store", backend.uri, "verify", "--json")
    assert code == 1 and out == ""
    assert err.startswith("recserve store: error: ") and err.count("\n") == 1
    assert backend.file_uri(c, bad) in err
    assert "Traceback" not in err


def test_promote_rollback_gc(store3, capsys) -> None:
    backend, store, (a, b, c) = store3
    assert run(capsys, "store", "--store", backend.uri, "promote", a)[0] == 0
    assert store.current_version() == a
    code, out, _ = run(capsys, "store", "--store", backend.uri, "rollback")
    assert code == 0 and c in out and store.current_version() == c
    # rollback undid the promote: history is a, b, c again, so previous is b
    code, out, _ = run(capsys, "store", "--store", backend.uri, "gc", "--keep", "1")
    assert code == 0 and out.splitlines()[0] == f"deleted {a}"
    # current (c) and previous (b) survive keep=0 too
    code, out, _ = run(capsys, "store", "--store", backend.uri, "gc", "--keep", "0", "--json")
    assert code == 0 and json.loads(out) == {"store": backend.uri, "deleted": [], "kept": [b, c]}
    code, out, _ = run(capsys, "store", "--store", backend.uri, "rollback", "--json")
    assert code == 0 and json.loads(out)["current"] == b
    code, out, _ = run(capsys, "store", "--store", backend.uri, "promote", c, "--json")
    assert code == 0 and json.loads(out)["current"] == c
    code, out, _ = run(capsys, "store", "--store", backend.uri, "verify", "--all", "--json")
    assert code == 0 and [v["version"] for v in json.loads(out)["verified"]] == [b, c]


def test_errors_are_one_line_not_tracebacks(store_backend: StoreUnderTest, capsys) -> None:
    uri = store_backend.uri  # exists, holds no version
    code, _, err = run(capsys, "store", "--store", uri, "show", "no-such-version")
    assert code == 1 and "no-such-version" in err and "Traceback" not in err
    code, _, err = run(capsys, "store", "--store", uri, "rollback")
    assert code == 1 and "nothing to roll back" in err
    code, _, err = run(capsys, "store", "--store", uri, "verify")
    assert code == 1 and "no model published" in err
    code, out, err = run(capsys, "store", "--store", uri, "list", "--json")
    assert code == 0 and json.loads(out)["versions"] == [] and "no versions" in err


@pytest.mark.parametrize(
    "action", [["list"], ["list", "--json"], ["verify"], ["show", "v1"], ["gc", "--keep", "1"]]
)
def test_a_store_that_does_not_exist_is_an_error_naming_it(
    store_backend: StoreUnderTest, capsys, action: list[str]
) -> None:
    missing = store_backend.missing_uri()
    code, out, err = run(capsys, "store", *action, "--store", missing)
    assert code == 1 and out == ""
    assert err.startswith(f"recserve store: error: no model store at {missing}")
    assert err.count("\n") == 1 and "Traceback" not in err


def test_usage_errors_exit_2(capsys, tmp_path) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["store", "--store", str(tmp_path), "gc", "--keep", "-1"])
    assert exc.value.code == 2 and "--keep" in capsys.readouterr().err
    code, _, err = run(capsys, "store", "--store", "gs://x/y", "list")
    assert code == 1 and "unsupported store URI" in err
