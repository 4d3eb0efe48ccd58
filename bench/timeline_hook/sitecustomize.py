"""Loaded at start-up by the server under `bench/run.py --timeline` (bench/timeline.py says what it records).

Wraps functions of the server's own modules by name; a name that is gone fails the start, so a refactor
cannot leave the timeline silently empty. Records are kept in memory (at most RECORDS_MAX) until SIGUSR1,
which writes them to the file TALLY_BENCH_TIMELINE names (a temporary file renamed into place) and forgets
them. Without TALLY_BENCH_TIMELINE this module does nothing.
"""

from __future__ import annotations

import os

if os.environ.get("TALLY_BENCH_TIMELINE"):
    from bench.timeline_hook.stages import install

    install(os.environ["TALLY_BENCH_TIMELINE"])
