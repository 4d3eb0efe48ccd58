"""Persistence: SQLAlchemy Core tables, repositories (functions of a Connection), the unit of work."""
