"""Identifiers: time-ordered UUIDs (version 7 layout) so new rows land at the end of B-tree indexes."""

from __future__ import annotations

import os
import threading
import time

# Random bytes come from the OS a block at a time. os.urandom lets go of the GIL for its system call, and the
# batch writer, which takes an id per voucher, then waits for the event loop to let go of it again: under
# load that wait cost more than everything else the writer did for the voucher (bench/README.md).
RANDOM_BLOCK_BYTES = 4096
_ID_RANDOM_BYTES = 10
_blocks = threading.local()


def new_id() -> str:
    """The canonical text of a version 7 UUID: 48 bits of Unix milliseconds, the version, 12 random bits, the
    RFC 4122 variant and 62 random bits. Formatted here: going through `uuid.UUID` made it take half as
    long again, and every voucher a batch writes takes one."""
    unix_ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(_random_bytes(_ID_RANDOM_BYTES), "big")
    value = (unix_ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76  # version 7
    value |= ((rand >> 62) & 0xFFF) << 64  # 12 random bits
    value |= 0b10 << 62  # RFC 4122 variant
    value |= rand & ((1 << 62) - 1)
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _random_bytes(n: int) -> bytes:
    """The next `n` bytes of this thread's block of OS randomness, each byte handed out once. A block is never
    shared: each thread has its own, and a forked child draws a block of its own rather than repeat the ids
    its parent takes next."""
    block, at, pid = getattr(_blocks, "state", (b"", 0, 0))
    if at + n > len(block) or pid != os.getpid():
        block, at, pid = os.urandom(RANDOM_BLOCK_BYTES), 0, os.getpid()
    _blocks.state = (block, at + n, pid)
    return block[at:at + n]
