"""Fuzzing the `thumbs` command's inputs: any argument and any THUMBS_* value is either accepted
or refused in one line with exit 2; never a traceback, never another exit code."""

from __future__ import annotations

import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from thumbs import cli
from thumbs.settings import Settings

FIELDS = sorted(f"THUMBS_{name.upper()}" for name in Settings.model_fields)
TEXT = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=40)


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    old = sys.argv
    sys.argv = ["thumbs", *argv]
    try:
        cli.main()
        code = 0
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    finally:
        sys.argv = old
    return code, capsys.readouterr().err


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(FIELDS), value=TEXT, source=TEXT)
def test_any_setting_value_and_source_is_one_clear_line(
    name: str, value: str, source: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    monkeypatch.setenv("THUMBS_SECRET", "k")
    monkeypatch.setenv("THUMBS_DATA_DIR", str(tmp_path_factory.getbasetemp() / "cli-fuzz"))
    monkeypatch.setenv(name, value)
    code, err = run(["url", source], capsys)
    assert code in (0, 2), (name, value, source, code, err)
    assert "Traceback" not in err
    if code == 2:
        assert err.startswith("thumbs: error: ") and err.strip().count("\n") == 0, err


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(argv=st.lists(st.one_of(TEXT, st.sampled_from(["--port", "--workers", "--images", "--profile",
                                                        "--batch-size", "--help", "-h", "--", "url"])),
                     max_size=4))
def test_any_arguments_are_refused_in_one_line(
    argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    # Commands that would start something (serve, stack, demo, worker, migrate, backfill) are
    # fuzzed through their options only; without a secret and tokens they must refuse in one line.
    for key in [key for key in sys.modules["os"].environ if key.startswith("THUMBS_")]:
        monkeypatch.delenv(key)
    for command in ("serve", "stack", "backfill", "url"):
        code, err = run([command, *argv], capsys)
        assert code in (0, 2), (command, argv, code, err)
        assert "Traceback" not in err
        if code == 2:
            assert err.strip().count("\n") == 0, err
