"""README.md's configuration table lists every setting, and only real ones."""

from __future__ import annotations

import re
from pathlib import Path

from thumbs.settings import Settings

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_configuration_table_matches_the_settings() -> None:
    documented = set(re.findall(r"^\| `(THUMBS_[A-Z_]+)` \|", README, flags=re.MULTILINE))
    fields = {f"THUMBS_{name.upper()}" for name in Settings.model_fields}
    assert documented == fields


def test_readme_gives_the_two_commands_first() -> None:
    first_block = README.split("```")[1]
    assert "make demo" in first_block and "make test" in first_block
