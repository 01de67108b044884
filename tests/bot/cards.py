"""Reading Adaptive Cards in tests: every node of a card that matches, depth first."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any


def nodes(card: Any, matches: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
    """Every dict in ``card`` (the body, the actions, ShowCard forms, fallbacks) that ``matches``."""

    def walk(node: Any) -> Iterator[dict[str, Any]]:
        if isinstance(node, dict):
            if matches(node):
                yield node
            for value in node.values():
                yield from walk(value)
        elif isinstance(node, list):
            for value in node:
                yield from walk(value)

    return list(walk(card))


def actions_of(card: dict[str, Any]) -> list[dict[str, Any]]:
    """Every action (``Action.*``), ShowCard forms and fallbacks included."""
    return nodes(card, lambda n: str(n.get("type", "")).startswith("Action."))


def inputs_of(card: dict[str, Any]) -> list[dict[str, Any]]:
    return nodes(card, lambda n: str(n.get("type", "")).startswith("Input."))


def datas_of(card: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``data`` of every action: what pressing it sends back."""
    return [n["data"] for n in nodes(card, lambda n: isinstance(n.get("data"), dict))]


def texts(card: dict[str, Any]) -> str:
    """Every TextRun's and TextBlock's text, a line each."""
    return "\n".join(n["text"] for n in nodes(card, lambda n: n.get("type") in ("TextRun", "TextBlock")))


def button(card: dict[str, Any], action_id: int, title: str) -> dict[str, Any]:
    """The (Action.Execute) button ``title`` of the action ``action_id``."""
    return next(a for a in actions_of(card) if a.get("title") == title and a.get("data", {}).get("a") == action_id)
