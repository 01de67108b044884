"""slack/manifest.yml creates an app that can do what Chaser asks of Slack, in one step."""
from __future__ import annotations

from pathlib import Path

import yaml

MANIFEST = Path(__file__).resolve().parents[2] / "slack" / "manifest.yml"


def test_the_manifest_asks_for_what_chaser_uses_and_nothing_it_does_not() -> None:
    manifest = yaml.safe_load(MANIFEST.read_text(encoding="utf-8"))
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])
    # post and edit DMs, find owners by email, /chaser; im:history to look for an interrupted send
    assert scopes == {"chat:write", "im:write", "im:history", "users:read", "users:read.email", "commands"}
    settings = manifest["settings"]
    assert settings["socket_mode_enabled"] is True  # no public URL needed behind a council firewall
    assert settings["interactivity"]["is_enabled"] is True  # the buttons and the Update… form
    assert settings["event_subscriptions"]["bot_events"] == ["app_home_opened"]  # the Home tab
    features = manifest["features"]
    assert features["app_home"]["home_tab_enabled"] is True
    assert [command["command"] for command in features["slash_commands"]] == ["/chaser"]
