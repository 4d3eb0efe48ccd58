"""The settlement side: statement reconciliation."""
