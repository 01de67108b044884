"""Jinja2 templates per message kind and channel: ``<kind>/<channel>.<fmt>.j2``."""
