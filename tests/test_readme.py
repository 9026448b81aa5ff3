"""The README's configuration table names every setting (so a new setting cannot go undocumented)."""

from __future__ import annotations

from pathlib import Path

from service.settings import Settings

README = Path(__file__).resolve().parents[1] / "README.md"


def test_every_setting_is_in_the_readme() -> None:
    text = README.read_text()
    missing = [name for name in Settings.model_fields if f"`RECSERVE_{name.upper()}`" not in text]
    assert not missing, f"README's configuration table lacks: {missing}"
