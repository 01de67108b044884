"""The one exception family every part of Chaser raises for problems a user can fix."""
from __future__ import annotations


class ChaserError(Exception):
    """Base class: the message is written for the person at the keyboard."""


class ConfigError(ChaserError):
    """The configuration file or environment names a bad key or value."""


class ImportFileError(ChaserError):
    """A plan file could not be imported at all; nothing was written."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


class NotFound(ChaserError):
    """A reference (action ref, plan name, person email) matched nothing."""


class NotAllowed(ChaserError):
    """The person is not an owner, delegate or EDI lead of the action."""


class InvalidValue(ChaserError):
    """A value given on the command line or in a reply cannot be used."""
