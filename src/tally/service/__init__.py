"""Command handlers, the posting pipeline and queries: plain functions of commands and a unit of work."""
