"""``chaser teams package`` (the zip an admin uploads to Teams) and ``chaser teams install`` (the app
installed in owners' Teams through Graph, against a loopback HTTPS server playing Entra and Graph)."""
from __future__ import annotations

import importlib.util
import io
import json
import shutil
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from PIL import Image, ImageChops

from bot.channels import CHANNELS
from tests.bot.graph_server import GraphFake, graph_server
from tests.conftest import ROOT, Chaser, cli
from tests.importers.makers import write_csv

APP_ID = "0D6B2A33-5C3E-4F1A-9B7D-2E8F4C6A1B90"  # as the Azure portal shows it; the manifest has it lower-cased
CATALOG = "b1c5353a-7aca-41b3-830f-27d5218fe0e5"
SAM_OID = "5b649834-7412-4cce-9e69-176e95a394f5"
SAM, PRIYA, LEE, DANA = "sam@housing.example", "priya@housing.example", "lead@housing.example", "dana@housing.example"
DETAILS = ["--host", "chaser.housing.example", "--developer", "Housing Council",
           "--website-url", "https://housing.example", "--privacy-url", "https://housing.example/privacy",
           "--terms-url", "https://housing.example/terms"]


@pytest.fixture(autouse=True)
def teams_table_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    """A ``[channels.teams]`` table loads whether or not the Teams channel is registered yet (it is
    written ``enabled = false`` here, so the channel's own checks do not run)."""
    monkeypatch.setitem(CHANNELS, "teams", CHANNELS.get("teams", "bot.channels.memory:Memory"))


def package(*args: str, expect: int = 0):  # type: ignore[no-untyped-def]
    return cli({})("teams", "package", *args, expect=expect)


def unzip(path: Path) -> tuple[list[str], dict, dict[str, Image.Image]]:  # type: ignore[type-arg]
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        manifest = json.loads(archive.read("manifest.json"))
        icons = {name: Image.open(io.BytesIO(archive.read(name))) for name in names if name.endswith(".png")}
    return names, manifest, icons


# -- package ----------------------------------------------------------------------------------
def test_the_package_holds_the_manifest_with_the_app_id_and_both_icons_at_its_root() -> None:
    out = package("--app-id", APP_ID, *DETAILS)

    assert out.stdout.startswith(f"Wrote chaser-teams.zip: Chaser 1.0.0 for app {APP_ID.lower()} ")
    names, manifest, icons = unzip(Path("chaser-teams.zip"))
    assert names == ["manifest.json", "color.png", "outline.png"]
    assert manifest["manifestVersion"] == "1.17" and "/v1.17/" in manifest["$schema"]
    assert manifest["id"] == APP_ID.lower()
    (bot,) = manifest["bots"]
    assert bot["botId"] == APP_ID.lower()
    assert bot["scopes"] == ["personal", "team"]  # owners' chats, and a channel for the EDI lead's list
    assert (bot["supportsFiles"], bot["isNotificationOnly"]) == (False, False)  # owners answer on the card
    # Graph lets an app install itself (chaser teams install) only when the manifest names it here.
    assert manifest["webApplicationInfo"]["id"] == APP_ID.lower()
    assert manifest["validDomains"] == ["chaser.housing.example"]
    assert manifest["developer"] == {"name": "Housing Council", "websiteUrl": "https://housing.example",
                                     "privacyUrl": "https://housing.example/privacy",
                                     "termsOfUseUrl": "https://housing.example/terms"}
    assert manifest["name"]["short"] == "Chaser" and len(manifest["description"]["short"]) <= 80
    assert "{{" not in json.dumps(manifest)
    assert (icons["color.png"].size, icons["outline.png"].size) == ((192, 192), (32, 32))
    data = icons["outline.png"].convert("RGBA").tobytes()
    pixels = [tuple(data[i:i + 4]) for i in range(0, len(data), 4)]
    assert {pixel[:3] for pixel in pixels if pixel[3]} == {(255, 255, 255)}  # white ...
    assert any(pixel[3] == 0 for pixel in pixels)  # ... on transparent
    assert len(icons["color.png"].convert("RGB").getcolors(192 * 192) or ()) > 2  # full colour


def test_name_version_and_out_are_filled_in_and_the_same_input_makes_the_same_zip(tmp_path: Path) -> None:
    args = ["--app-id", APP_ID, *DETAILS, "--name", "Lambeth Chaser", "--version", "1.2.0", "--format", "json"]
    first = json.loads(package(*args, "--out", "one.zip").stdout)
    package(*args, "--out", "two.zip")

    assert first == {"path": "one.zip", "app_id": APP_ID.lower(), "name": "Lambeth Chaser", "version": "1.2.0",
                     "files": ["manifest.json", "color.png", "outline.png"]}
    _, manifest, _ = unzip(Path("one.zip"))
    assert manifest["name"] == {"short": "Lambeth Chaser", "full": "Lambeth Chaser: action plan reminders"}
    assert manifest["version"] == "1.2.0"
    assert Path("one.zip").read_bytes() == Path("two.zip").read_bytes()  # an upload can be checked against it


def test_the_app_id_and_host_default_to_the_configuration() -> None:
    Path("chaser.toml").write_text(f'[web]\nbase_url = "https://chaser.housing.example"\n'
                                   f'[channels.teams]\nenabled = false\napp_id = "{APP_ID}"\n')
    details = [a for a in DETAILS if a not in ("--host", "chaser.housing.example", "--website-url",
                                                "https://housing.example")]
    package(*details)

    _, manifest, _ = unzip(Path("chaser-teams.zip"))
    assert (manifest["id"], manifest["bots"][0]["botId"]) == (APP_ID.lower(), APP_ID.lower())
    assert manifest["validDomains"] == ["chaser.housing.example"]
    assert manifest["developer"]["websiteUrl"] == "https://chaser.housing.example"


def test_an_app_id_that_is_not_a_guid_is_refused_and_nothing_is_written() -> None:
    refused = package("--app-id", "chaser-bot", *DETAILS, expect=2)

    assert refused.stderr.startswith("chaser: --app-id 'chaser-bot' is not a GUID such as ")
    assert "Application (client) ID" in refused.stderr
    assert not Path("chaser-teams.zip").exists()
    Path("chaser.toml").write_text('[channels.teams]\nenabled = false\napp_id = "12345"\n')
    assert package(*DETAILS, expect=2).stderr.startswith("chaser: 'channels.teams.app_id' '12345' is not a GUID")


def test_without_an_app_id_anywhere_the_command_says_where_to_give_one() -> None:
    refused = package(*DETAILS, expect=2)
    assert refused.stderr.strip() == ("chaser: --app-id is required (or set app_id in [channels.teams]): the "
                                      "Application (client) ID of the bot's Entra app registration")


def test_every_missing_detail_and_bad_value_is_named_at_once() -> None:
    refused = package("--app-id", APP_ID, "--website-url", "http://housing.example", "--version", "2",
                      "--name", "The Housing Directorate's Chaser", expect=2)

    message = refused.stderr
    assert message.startswith("chaser: the Teams app package was not written: ")
    for named in ("developer.name still holds {{DEVELOPER_NAME}}: give --developer",
                  "developer.privacyUrl still holds {{PRIVACY_URL}}: give --privacy-url",
                  "developer.termsOfUseUrl still holds {{TERMS_URL}}: give --terms-url",
                  "validDomains[0], webApplicationInfo.resource still hold {{HOST}}: give --host",
                  "name.short is 32 characters; Teams allows 30",
                  "version '2' must be three numbers such as 1.0.0",
                  "developer.websiteUrl 'http://housing.example' must be an https URL"):
        assert named in message
    assert not Path("chaser-teams.zip").exists()


def test_icons_of_the_wrong_size_or_colour_are_refused(tmp_path: Path) -> None:
    template = tmp_path / "mine"
    shutil.copytree(ROOT / "teams", template)
    Image.new("RGBA", (96, 96), (31, 92, 153, 255)).save(template / "color.png")
    Image.new("RGBA", (32, 32), (31, 92, 153, 255)).save(template / "outline.png")  # coloured, opaque

    refused = package("--app-id", APP_ID, *DETAILS, "--template", str(template), expect=2)

    assert f"{template / 'color.png'}: icons.color must be 192x192 pixels, not 96x96" in refused.stderr
    assert f"{template / 'outline.png'}: icons.outline must be white on a transparent background" in refused.stderr
    (template / "outline.png").unlink()
    refused = package("--app-id", APP_ID, *DETAILS, "--template", str(template), expect=2)
    assert "icons.outline names a file that does not exist" in refused.stderr


def test_the_committed_icons_are_what_make_icons_draws() -> None:
    spec = importlib.util.spec_from_file_location("make_icons", ROOT / "teams" / "make_icons.py")
    assert spec is not None and spec.loader is not None
    drawing = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(drawing)

    for image, name in ((drawing.color(), "color.png"), (drawing.outline(), "outline.png")):
        with Image.open(ROOT / "teams" / name) as committed:
            assert committed.size == image.size, name
            # Another Pillow may resample a shade differently; a changed drawing differs by far more.
            difference = ImageChops.difference(committed.convert("RGBA"), image.convert("RGBA"))
            assert max(high for _, high in difference.getextrema()) <= 8, name


# -- install ----------------------------------------------------------------------------------
@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[GraphFake]:
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "ca.pem"))
    users = {SAM_OID: SAM, "9c1e6f0a-2b4d-4e8a-8f3c-7d5b1a2e4c6f": PRIYA,
             "3f2a1b0c-9d8e-4f7a-b6c5-d4e3f2a1b0c9": LEE}
    with graph_server(GraphFake(users=users, catalog={CATALOG}), ca) as served:
        monkeypatch.setenv("CHASER_GRAPH_TENANT_ID", served.tenant)
        monkeypatch.setenv("CHASER_GRAPH_CLIENT_ID", APP_ID)
        monkeypatch.setenv("CHASER_GRAPH_CLIENT_SECRET", served.client_secret or "")
        served.client_id = APP_ID  # the bot's own app registration, as webApplicationInfo names it
        yield served


@pytest.fixture
def run(chaser: Chaser, fake: GraphFake, tmp_path: Path) -> Chaser:
    """Sam (with his Entra object id) and Priya (email only) own open actions; Dana's is done;
    Lee owns nothing."""
    Path("chaser.toml").write_text(
        f'edi_lead = "{LEE}"\n'
        f'[channels.teams]\nenabled = false\napp_id = "{APP_ID}"\ncatalog_app_id = "{CATALOG}"\n'
        f'graph_url = "{fake.url}"\nauthority_url = "{fake.url}"\n')
    chaser("import", str(write_csv(tmp_path / "plan.csv", [
        ["Ref", "Action", "Owner", "Deadline"],
        ["HW 7", "Survey the temporary accommodation", "Head of Housing", "10/12/2026"],
        ["HW 8", "Publish the tenancy guide in five languages", "Tenancy Officer", "31/01/2027"],
        ["HW 9", "Train the lettings team", "Lettings Manager", "30/11/2026"],
    ])))
    chaser("people", "import", str(write_csv(tmp_path / "people.csv", [
        ["name", "email", "roles", "teams_id"],
        ["Sam Ade", SAM, "Head of Housing", SAM_OID],
        ["Priya Shah", PRIYA, "Tenancy Officer", ""],
        ["Dana Cole", DANA, "Lettings Manager", ""],
        ["Lee Lead", LEE, "", ""],
    ])))
    chaser("update", "HW 9", "--status", "complete", "--by", DANA)
    return chaser


def install(run: Chaser, *args: str, expect: int = 0) -> tuple[list[dict], str]:  # type: ignore[type-arg]
    result = run("teams", "install", *args, "--format", "json", expect=expect)
    return json.loads(result.stdout)["results"], result.stderr


def test_all_installs_the_app_for_everyone_who_answers_for_an_open_action(run: Chaser, fake: GraphFake) -> None:
    results, _ = install(run, "--all")

    assert [(r["email"], r["user"], r["outcome"]) for r in results] == [
        (PRIYA, PRIYA, "installed"),  # no teams_id: asked about by user principal name
        (SAM, SAM_OID, "installed"),  # by Entra object id
    ]
    assert fake.installed == {(SAM_OID, CATALOG), ("9c1e6f0a-2b4d-4e8a-8f3c-7d5b1a2e4c6f", CATALOG)}
    (post, _) = fake.calls("POST", r"/teamwork/installedApps$")
    assert json.loads(post.body) == {"teamsApp@odata.bind": f"{fake.url}/v1.0/appCatalogs/teamsApps/{CATALOG}"}
    assert post.headers["content-type"] == "application/json"
    assert len(fake.token_requests) == 1


def test_someone_who_has_the_app_already_is_told_so_and_it_is_not_a_failure(run: Chaser, fake: GraphFake) -> None:
    fake.installed.add((SAM_OID, CATALOG))

    out = run("teams", "install", "--person", SAM, "--person", PRIYA).stdout

    assert "Installed for 1, already installed for 1, failed for 0." in " ".join(out.split())
    results, _ = install(run, "--all")
    assert [r["outcome"] for r in results] == ["already", "already"]


def test_a_person_graph_does_not_know_is_reported_and_the_rest_are_installed(run: Chaser, fake: GraphFake) -> None:
    del fake.users["9c1e6f0a-2b4d-4e8a-8f3c-7d5b1a2e4c6f"]  # Priya has left the tenant

    results, stderr = install(run, "--all", expect=1)

    priya, sam = results
    assert (priya["outcome"], sam["outcome"]) == ("failed", "installed")
    assert priya["error"].startswith(f"{PRIYA} is not a user of the tenant, or the app {CATALOG} is not in its app "
                                     "catalog (give them a teams_id: their Entra object id)")
    assert stderr.startswith(f"chaser: the app could not be installed for 1 person(s): {PRIYA}: ")
    assert fake.installed == {(SAM_OID, CATALOG)}


def test_without_the_permission_the_first_refusal_says_which_and_nobody_else_is_tried(run: Chaser,
                                                                                    fake: GraphFake) -> None:
    fake.fail("POST", r"/teamwork/installedApps$", 403, times=5)

    results, stderr = install(run, "--all", expect=1)

    assert [r["outcome"] for r in results] == ["failed", "not tried"]
    assert "TeamsAppInstallation.ReadWriteSelfForUser.All application permission with admin consent" in \
        results[0]["error"]
    assert "mailbox" not in results[0]["error"] and "access policy" not in results[0]["error"]
    assert "chaser: the app could not be installed for 2 person(s)" in stderr
    assert len(fake.calls("POST", r"/teamwork/installedApps$")) == 1 and fake.installed == set()


def test_people_and_ids_that_cannot_be_used_are_refused_before_graph_is_asked(run: Chaser, fake: GraphFake) -> None:
    refused = run("teams", "install", "--person", SAM, "--person", "gone@housing.example", expect=2)
    assert refused.stderr.strip() == ("chaser: gone@housing.example: nobody with that email in the people directory "
                                      "(see 'chaser people import')")
    assert run("teams", "install", expect=2).stderr.startswith("chaser: give --person EMAIL (one or more), or --all")
    assert run("teams", "install", "--all", "--person", SAM, expect=2).stderr.startswith(
        "chaser: give --person EMAIL (one or more) or --all, not both")
    assert run("teams", "install", "--all", "--catalog-id", "Chaser", expect=2).stderr.startswith(
        "chaser: --catalog-id 'Chaser' is not a GUID")
    Path("chaser.toml").write_text(f'[channels.teams]\nenabled = false\napp_id = "{APP_ID}"\n')
    missing = run("teams", "install", "--all", expect=2).stderr
    assert missing.startswith("chaser: --catalog-id is required (or set catalog_app_id in [channels.teams]): ")
    assert "Teams admin centre" in missing
    assert fake.requests == []


def test_missing_graph_credentials_are_named_before_anything_is_asked(run: Chaser, fake: GraphFake,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CHASER_GRAPH_CLIENT_SECRET")

    refused = run("teams", "install", "--all", expect=2)

    assert refused.stderr.startswith("chaser: CHASER_GRAPH_CLIENT_SECRET is not set")
    assert fake.requests == []


def test_a_graph_app_other_than_the_bot_is_pointed_out(run: Chaser, fake: GraphFake,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    other = "7e3f1c2a-0b9d-4a8e-9c6f-5d4b3a2e1f0c"
    monkeypatch.setenv("CHASER_GRAPH_CLIENT_ID", other)
    fake.client_id = other
    fake.fail("POST", r"/teamwork/installedApps$", 403, times=1)

    _, stderr = install(run, "--person", SAM, expect=1)

    assert f"CHASER_GRAPH_CLIENT_ID is {other}, not the bot's app id {APP_ID}" in stderr
