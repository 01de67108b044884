"""OutboxFolder writes real .eml and Slack-shaped .json files; the registry; the Memory channel."""
from __future__ import annotations

import email
import email.policy
import json
import os
import stat
from concurrent.futures import ThreadPoolExecutor
from email.utils import format_datetime
from pathlib import Path

import pytest

from bot.channels import CHANNELS, ChannelError, UnknownChannel, load_channel
from bot.channels.base import Channel, Receipt
from bot.channels.memory import Memory
from bot.channels.outbox_folder import OutboxFolder
from chaser.errors import ChaserError
from tests.bot import SENT_AT, make_envelope, make_item


def files(folder: Path) -> list[Path]:
    """The messages in the folder; its .tmp subfolder must hold nothing once a send returns."""
    temporary = folder / ".tmp"
    assert not temporary.exists() or list(temporary.iterdir()) == []
    return sorted(path for path in folder.iterdir() if path != temporary)


def test_writes_a_multipart_email_and_a_chat_message(tmp_path: Path) -> None:
    folder = tmp_path / "outbox" / "new"          # created on first send
    channel = OutboxFolder(folder=folder, sender="Chaser <chaser@lambeth.example.gov.uk>")
    envelope = make_envelope()
    assert channel.address(envelope.recipient) == "priya.shah@lambeth.example.gov.uk"

    receipt = channel.send(envelope)

    stem = "20260428T093000-000042-priya-shah"
    assert [path.name for path in files(folder)] == [f"{stem}.eml", f"{stem}.json"]
    assert receipt.possible_duplicate is False

    message = email.message_from_bytes((folder / f"{stem}.eml").read_bytes(), policy=email.policy.default)
    assert message.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in message.iter_parts()] == ["text/plain", "text/html"]
    assert message["To"].addresses[0].addr_spec == "priya.shah@lambeth.example.gov.uk"
    assert message["To"].addresses[0].display_name == "Priya Shah"
    assert message["From"].addresses[0].addr_spec == "chaser@lambeth.example.gov.uk"
    assert message["Subject"] == "Update needed: HW 3 due in 2 working days"
    assert message["Date"] == format_datetime(SENT_AT)
    assert message["Date"].datetime == SENT_AT
    assert message["Message-ID"] == receipt.ref["message_id"]
    assert receipt.ref["message_id"].startswith("<") and receipt.ref["message_id"].endswith("@lambeth.example.gov.uk>")
    assert receipt.channel == "outbox_folder" and receipt.ref["path"].endswith(".json")
    assert message["X-Chaser-Outbox-Id"] == "42"
    plain = message.get_body(preferencelist=("plain",)).get_content()
    html = message.get_body(preferencelist=("html",)).get_content()
    assert plain.startswith("Hello Priya Shah,")
    assert "<!DOCTYPE html>" in html and "HW 3" in html

    document = json.loads((folder / f"{stem}.json").read_text(encoding="utf-8"))
    assert document["channel"] == "U024BE7LH"
    assert "HW 3" in document["text"]
    assert any(block["type"] == "actions" for block in document["blocks"])
    assert document["metadata"]["event_type"] == "chaser_nudge"
    assert document["metadata"]["event_payload"]["outbox_id"] == 42


def test_email_headers_stay_safe_with_hostile_names(tmp_path: Path) -> None:
    channel = OutboxFolder(folder=tmp_path)
    envelope = make_envelope(make_item(title="<script>x</script>"), recipient_name='Eve "<b>"\nBcc: x@evil')
    channel.send(envelope)
    eml = next(tmp_path.glob("*.eml"))
    message = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
    assert message["Bcc"] is None
    assert message["To"].addresses[0].addr_spec == "priya.shah@lambeth.example.gov.uk"
    assert "<script>" not in message.get_body(preferencelist=("html",)).get_content()


def test_sending_the_same_outbox_id_twice_writes_once(tmp_path: Path) -> None:
    channel = OutboxFolder(folder=tmp_path)
    first = channel.send(make_envelope())
    before = {path: path.read_bytes() for path in files(tmp_path)}
    later = make_envelope(sent_at=SENT_AT.replace(hour=11))   # a retry after a crash, later on
    second = OutboxFolder(folder=tmp_path).send(later)
    assert second.possible_duplicate is True
    assert second.ref == first.ref
    assert {path: path.read_bytes() for path in files(tmp_path)} == before
    other = channel.send(make_envelope(outbox_id=43))
    assert other.possible_duplicate is False
    assert len(files(tmp_path)) == 4


def test_an_email_only_recipient_gets_only_the_eml(tmp_path: Path) -> None:
    OutboxFolder(folder=tmp_path).send(make_envelope(recipient_slack_id=None))
    assert [path.suffix for path in files(tmp_path)] == [".eml"]


def test_slack_only_recipient_gets_only_the_json(tmp_path: Path) -> None:
    channel = OutboxFolder(folder=tmp_path)
    envelope = make_envelope(recipient_email=None)
    assert channel.address(envelope.recipient) == "U024BE7LH"
    receipt = channel.send(envelope)
    assert [path.suffix for path in files(tmp_path)] == [".json"]
    assert receipt.ref == {"path": str(files(tmp_path)[0])}
    again = channel.send(envelope)
    assert again.possible_duplicate is True and again.ref == receipt.ref


def test_no_address_is_a_permanent_error(tmp_path: Path) -> None:
    channel = OutboxFolder(folder=tmp_path)
    envelope = make_envelope(recipient_email=None, recipient_slack_id=None)
    assert channel.address(envelope.recipient) is None
    with pytest.raises(ChannelError, match="has no address") as caught:
        channel.send(envelope)
    assert caught.value.permanent is True
    assert files(tmp_path) == []


def test_bad_email_address_is_a_permanent_error(tmp_path: Path) -> None:
    with pytest.raises(ChannelError) as caught:
        OutboxFolder(folder=tmp_path).send(make_envelope(recipient_email="not an address"))
    assert caught.value.permanent is True
    assert files(tmp_path) == []


def test_unwritable_folder_is_a_transient_error(tmp_path: Path) -> None:
    blocker = tmp_path / "outbox"
    blocker.write_text("a file where the folder should be")
    with pytest.raises(ChannelError) as caught:
        OutboxFolder(folder=blocker).send(make_envelope())
    assert caught.value.permanent is False
    with pytest.raises(ChannelError) as caught:
        OutboxFolder(folder=blocker / "below").send(make_envelope())
    assert caught.value.permanent is False


def test_failed_write_leaves_no_temporary_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("bot.channels.outbox_folder.os.replace", refuse)
    with pytest.raises(ChannelError, match="No space left") as caught:
        OutboxFolder(folder=tmp_path).send(make_envelope())
    assert caught.value.permanent is False
    assert files(tmp_path) == []


def test_threads_sending_at_once_write_each_message_once(tmp_path: Path) -> None:
    channel = OutboxFolder(folder=tmp_path)
    envelopes = [make_envelope(outbox_id=n, recipient_name=f"Owner {n}") for n in range(1, 201)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        first = list(pool.map(channel.send, envelopes))
    assert not any(receipt.possible_duplicate for receipt in first)
    assert len({receipt.ref["message_id"] for receipt in first}) == 200
    names = [path.name for path in files(tmp_path)]
    assert sorted(int(name.split("-")[1]) for name in names if name.endswith(".eml")) == list(range(1, 201))
    assert len(names) == 400  # .eml and .json each
    with ThreadPoolExecutor(max_workers=8) as pool:  # all again, as after a crash: nothing new
        again = list(pool.map(channel.send, envelopes))
    assert [receipt.possible_duplicate for receipt in again] == [True] * 200
    assert [receipt.ref for receipt in again] == [receipt.ref for receipt in first]
    assert len(files(tmp_path)) == 400


def test_a_file_someone_else_put_in_the_folder_is_seen(tmp_path: Path) -> None:
    channel = OutboxFolder(folder=tmp_path)
    channel.send(make_envelope(outbox_id=1))               # the folder is indexed now
    other = OutboxFolder(folder=tmp_path)                  # another chaser run, same folder
    written = other.send(make_envelope(outbox_id=2))
    # A resend (its lease ran out) always looks afresh; so does any send once the folder's
    # mtime moved, unless the other write fell in the same clock tick as ours.
    again = channel.send(make_envelope(outbox_id=2, resend=True))
    assert again == Receipt("outbox_folder", written.ref, possible_duplicate=True)
    assert files(tmp_path) == sorted(tmp_path / name for name in (
        "20260428T093000-000001-priya-shah.eml", "20260428T093000-000001-priya-shah.json",
        "20260428T093000-000002-priya-shah.eml", "20260428T093000-000002-priya-shah.json"))


def modes(folder: Path) -> dict[str, str]:
    return {path.suffix: oct(stat.S_IMODE(path.stat().st_mode)) for path in files(folder)}


def test_files_are_as_readable_as_the_umask_allows(tmp_path: Path, umask: None) -> None:
    # A pickup service running as another user must be able to read what Chaser writes.
    os.umask(0o022)
    OutboxFolder(folder=tmp_path / "a").send(make_envelope())
    assert modes(tmp_path / "a") == {".eml": "0o644", ".json": "0o644"}
    os.umask(0o027)
    OutboxFolder(folder=tmp_path / "b").send(make_envelope())
    assert modes(tmp_path / "b") == {".eml": "0o640", ".json": "0o640"}


def test_a_file_mode_sets_the_permissions_whatever_the_umask(tmp_path: Path, umask: None) -> None:
    os.umask(0o077)
    OutboxFolder(folder=tmp_path / "a", file_mode=0o640).send(make_envelope())
    assert modes(tmp_path / "a") == {".eml": "0o640", ".json": "0o640"}
    os.umask(0o022)
    OutboxFolder(folder=tmp_path / "b", file_mode=0o600).send(make_envelope())
    assert modes(tmp_path / "b") == {".eml": "0o600", ".json": "0o600"}


def test_a_write_that_fails_halfway_leaves_no_temporary_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def disk_full(handle: int, data: bytes) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("bot.channels.outbox_folder.os.write", disk_full)
    with pytest.raises(ChannelError, match="No space left") as caught:
        OutboxFolder(folder=tmp_path).send(make_envelope())
    assert caught.value.permanent is False
    assert files(tmp_path) == []


# ---- the registry ------------------------------------------------------------------------

def test_load_channel_memory() -> None:
    channel = load_channel("memory", {}, None)
    assert isinstance(channel, Memory)
    assert isinstance(channel, Channel)
    assert channel.kind == "memory"


def test_load_channel_passes_options(tmp_path: Path) -> None:
    channel = load_channel("outbox_folder", {"folder": str(tmp_path), "sender": "chaser@council.example"}, None)
    assert isinstance(channel, OutboxFolder)
    assert channel.folder == tmp_path


def test_unknown_channel_names_the_known_ones() -> None:
    with pytest.raises(UnknownChannel) as caught:
        load_channel("pigeon", {}, None)
    assert isinstance(caught.value, ChaserError)
    for kind in CHANNELS:
        assert kind in str(caught.value)
    assert "pigeon" in str(caught.value)


def test_bad_options_are_a_chaser_error() -> None:
    with pytest.raises(ChaserError, match="unknown key 'channels.memory.colour'"):
        load_channel("memory", {"colour": "blue"}, None)


# ---- the memory channel ------------------------------------------------------------------

def test_memory_fails_then_succeeds() -> None:
    channel = Memory(fail_times=2)
    envelope = make_envelope()
    for _ in range(2):
        with pytest.raises(ChannelError) as caught:
            channel.send(envelope)
        assert caught.value.permanent is False
    receipt = channel.send(envelope)
    assert receipt == Receipt("memory", {"id": "memory:42:1"})
    assert channel.sent == [envelope]
    assert channel.attempts == 3
    assert channel.send(envelope).possible_duplicate is True


def test_memory_permanent_failure_and_address() -> None:
    channel = Memory(permanent_failure=True)
    with pytest.raises(ChannelError) as caught:
        channel.send(make_envelope())
    assert caught.value.permanent is True
    assert channel.sent == []
    assert channel.address(make_envelope().recipient) == "priya.shah@lambeth.example.gov.uk"
    assert channel.address(make_envelope(recipient_email=None).recipient) == "U024BE7LH"
    assert channel.address(make_envelope(recipient_email=None, recipient_slack_id=None).recipient) == "memory"
