"""Shared database infrastructure: engine, dialect differences, tables, unit of work."""
