"""The outbox as the EDI lead and a pickup service see it: retrying by id, file permissions."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tests.conftest import LAMBETH, Chaser
from tests.importers.makers import write_csv


@pytest.fixture
def run(chaser: Chaser) -> Chaser:
    return chaser


@pytest.mark.parametrize("outbox_id", ["99999999999999999999", "2147483648", "9223372036854775808", "0"])
def test_retrying_an_id_no_message_can_have_says_there_is_none(run, outbox_id: str) -> None:  # type: ignore[no-untyped-def]
    result = run("outbox", "retry", outbox_id, expect=2)
    assert result.stderr == f"chaser: no outbox message {outbox_id}\n"


def send_to_the_folder(run, tmp_path: Path, extra: str = "") -> list[Path]:  # type: ignore[no-untyped-def]
    Path("chaser.toml").write_text(f'[channels.outbox_folder]\nfolder = "out"\n{extra}')
    run("import", str(LAMBETH))
    people = write_csv(tmp_path / "people.csv", [
        ["name", "email", "roles", "slack_id"],
        ["Priya Shah", "priya@lambeth.example", "HR Business Partner", "U024BE7LH"],
    ])
    run("people", "import", str(people))
    assert "Sent 1," in run("run", "--once", "--at", "2023-04-17T10:00").stdout
    return sorted([*Path("out").glob("*.eml"), *Path("out").glob("*.json")])


def test_a_pickup_service_as_another_user_can_read_the_messages(run, tmp_path: Path, umask: None) -> None:  # type: ignore[no-untyped-def]
    os.umask(0o022)
    written = send_to_the_folder(run, tmp_path)
    assert [(p.suffix, oct(stat.S_IMODE(p.stat().st_mode))) for p in written] == [(".eml", "0o644"), (".json", "0o644")]


def test_file_mode_in_the_config_sets_the_permissions(run, tmp_path: Path, umask: None) -> None:  # type: ignore[no-untyped-def]
    os.umask(0o077)
    written = send_to_the_folder(run, tmp_path, 'file_mode = "0640"\n')
    assert [(p.suffix, oct(stat.S_IMODE(p.stat().st_mode))) for p in written] == [(".eml", "0o640"), (".json", "0o640")]
