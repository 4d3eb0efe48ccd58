"""The suite's own safety net (tests/conftest.py): a hung asyncio test fails at pytest-timeout's limit, the
run goes on, and its report names every pending task's chain of awaits down to what it waits on."""

from __future__ import annotations

from pathlib import Path

pytest_plugins = ["pytester"]
ROOT = Path(__file__).resolve().parents[2]


def test_a_hung_asyncio_test_fails_and_says_what_it_waits_for(pytester, monkeypatch) -> None:
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    pytester.makeini("[pytest]\nasyncio_mode = auto\n")
    pytester.makepyfile(test_hangs="""
        import asyncio
        import pytest

        async def _waits_for_nothing():
            await asyncio.Event().wait()

        @pytest.mark.timeout(1)
        async def test_hangs():
            await _waits_for_nothing()

        def test_after():
            pass
    """)
    result = pytester.runpytest_subprocess("-p", "tests.conftest", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines(["*asyncio tasks at the timeout*", "*test_hangs.py:*in test_hangs",
                                 "*test_hangs.py:*in _waits_for_nothing", "*waits on*"])
