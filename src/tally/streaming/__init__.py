"""Streams of committed events: the hub, the balance changes derived from events, and the cross-process
listener. Light on purpose: clients (`tally watch`) import the wire names below from here."""

AFTER_SEQUENCE_HEADER = "tally-after-sequence"  # a stream's initial metadata: it delivers every event after it
