"""Chaser: keeps public-sector action plans moving.

The command line and configuration live here; the domain lives in the top-level packages
``storage`` (schema, importers, ``record_update``), ``jobs`` (time) and ``bot`` (channels).
"""
from __future__ import annotations

__version__ = "0.1.0"
