"""Fault-injection suite: bank workload, faults, history checker."""
