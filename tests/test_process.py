"""What scrob's own processes do to the interpreter (scrobbler_cli/_process.py)."""

from __future__ import annotations

import gc

import pytest

from scrobbler_cli._process import collecting_never


@pytest.mark.parametrize("enabled", [True, False])
def test_a_big_job_runs_without_the_collector_and_leaves_it_as_it_was(enabled: bool) -> None:
    was = gc.isenabled()
    try:
        (gc.enable if enabled else gc.disable)()
        with collecting_never():
            assert not gc.isenabled()
        assert gc.isenabled() is enabled
        with pytest.raises(RuntimeError), collecting_never():
            raise RuntimeError("an import that fails")
        assert gc.isenabled() is enabled
    finally:
        (gc.enable if was else gc.disable)()
