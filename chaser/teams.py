"""The Microsoft Teams app: its package (``chaser teams package``) and installing it for owners
through Microsoft Graph (``chaser teams install``).

The package is ``teams/manifest.json`` with the app id and the council's details filled in,
and the two icons beside it, zipped at the root as Teams wants them
(https://learn.microsoft.com/microsoftteams/platform/concepts/build-and-test/apps-package).
It is checked before it is written: a manifest Teams would refuse is refused here, naming what
is wrong, rather than by the Teams admin centre after an upload.
"""
from __future__ import annotations

import copy
import io
import json
import re
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from PIL import Image, UnidentifiedImageError

from bot.graph import GraphClient, GraphError, install_teams_app
from chaser.errors import ConfigError, InvalidValue

TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "teams"
GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
SEMVER = re.compile(r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)")
PLACEHOLDER = re.compile(r"\{\{([A-Z_]+)\}\}")
# What fills each placeholder of the template: the option that gives it.
PLACEHOLDERS = {"APP_ID": "--app-id", "HOST": "--host", "DEVELOPER_NAME": "--developer",
                "WEBSITE_URL": "--website-url", "PRIVACY_URL": "--privacy-url", "TERMS_URL": "--terms-url"}
ICON_SIZES = {"color": (192, 192), "outline": (32, 32)}
BOT_SCOPES = {"personal", "team", "groupChat"}
# (path, longest) for the text Teams limits (the v1.17 schema's maxLength).
LIMITS = (("name.short", 30), ("name.full", 100), ("description.short", 80), ("description.full", 4000),
          ("developer.name", 32))
REQUIRED = ("manifestVersion", "version", "id", "developer.name", "developer.websiteUrl", "developer.privacyUrl",
            "developer.termsOfUseUrl", "name.short", "description.short", "description.full", "icons.color",
            "icons.outline", "accentColor")
ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # the same input makes the same zip, byte for byte


def check_guid(value: str, named: str) -> str:
    """``value`` if it is a GUID (as Entra writes app ids), lower-cased; else InvalidValue naming it."""
    text = value.strip()
    if not GUID.fullmatch(text):
        raise InvalidValue(f"{named} {value!r} is not a GUID such as 0d6b2a33-5c3e-4f1a-9b7d-2e8f4c6a1b90 "
                           "(the Application (client) ID of the Entra app registration)")
    return text.lower()


@dataclass(frozen=True)
class PackageDetails:
    """What ``chaser teams package`` fills in; None leaves the template's value."""

    app_id: str
    host: str | None = None
    name: str | None = None
    version: str | None = None
    developer: str | None = None
    website_url: str | None = None
    privacy_url: str | None = None
    terms_url: str | None = None


@dataclass(frozen=True)
class Package:
    path: Path
    app_id: str
    name: str
    version: str
    files: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        return {"path": str(self.path), "app_id": self.app_id, "name": self.name, "version": self.version,
                "files": list(self.files)}


def host_of(base_url: str) -> str | None:
    """The host of ``[web] base_url`` when Teams could reach it (https, not this machine), else None."""
    parts = urlsplit(base_url)
    if parts.scheme != "https" or not parts.hostname or parts.hostname in ("localhost", "127.0.0.1", "::1"):
        return None
    return parts.hostname


def fill_manifest(template: dict[str, Any], details: PackageDetails) -> dict[str, Any]:
    """The template with ``details`` filled in: the app id wherever Teams needs it (``id``,
    ``bots[0].botId``, ``webApplicationInfo.id``, and any ``{{APP_ID}}``), the other placeholders,
    and the name and version by key."""
    manifest = copy.deepcopy(template)
    values = {"APP_ID": details.app_id, "HOST": details.host, "DEVELOPER_NAME": details.developer,
              "WEBSITE_URL": details.website_url, "PRIVACY_URL": details.privacy_url, "TERMS_URL": details.terms_url}

    def fill(node: Any) -> Any:
        if isinstance(node, dict):
            return {key: fill(value) for key, value in node.items()}
        if isinstance(node, list):
            return [fill(value) for value in node]
        if isinstance(node, str):
            return PLACEHOLDER.sub(lambda m: values.get(m.group(1)) or m.group(0), node)
        return node

    manifest = fill(manifest)
    manifest["id"] = details.app_id
    for bot in manifest.get("bots") or []:
        if isinstance(bot, dict):
            bot["botId"] = details.app_id
    if isinstance(manifest.get("webApplicationInfo"), dict):
        manifest["webApplicationInfo"]["id"] = details.app_id
    if details.name is not None:
        names = manifest.setdefault("name", {})
        old = names.get("short")
        names["short"] = details.name
        full = names.get("full")
        if isinstance(full, str) and isinstance(old, str) and full.startswith(old):
            names["full"] = details.name + full[len(old):]  # "Chaser: action plan reminders" keeps its tail
    if details.version is not None:
        manifest["version"] = details.version
    return manifest


def _get(manifest: dict[str, Any], path: str) -> Any:
    node: Any = manifest
    for part in path.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def _strings(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(value, f"{path}.{key}" if path else key)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _strings(value, f"{path}[{index}]")
    elif isinstance(node, str):
        yield path, node


def manifest_problems(manifest: dict[str, Any]) -> list[str]:
    """What Teams would refuse in ``manifest`` (its fields; the icons are checked by
    :func:`icon_problems`), one sentence each; empty when it would take it."""
    problems: list[str] = []
    left: dict[str, list[str]] = {}  # placeholder -> where it is still
    for path, text in _strings(manifest):
        for name in PLACEHOLDER.findall(text):
            left.setdefault(name, []).append(path)
    for name, paths in left.items():
        option = PLACEHOLDERS.get(name)
        problems.append(f"{', '.join(paths)} still {'holds' if len(paths) == 1 else 'hold'} {{{{{name}}}}}: "
                        + (f"give {option}" if option else "replace it in the template"))
    for path in REQUIRED:
        value = _get(manifest, path)
        if not isinstance(value, str) or not value.strip():
            problems.append(f"{path} is required")
    for path, longest in LIMITS:
        value = _get(manifest, path)
        if isinstance(value, str) and len(value) > longest:
            problems.append(f"{path} is {len(value)} characters; Teams allows {longest}")
    version = manifest.get("version")
    if isinstance(version, str) and version and not SEMVER.fullmatch(version):
        problems.append(f"version {version!r} must be three numbers such as 1.0.0 (raise it for each upload)")
    for path in ("id", "webApplicationInfo.id"):
        value = _get(manifest, path)
        if isinstance(value, str) and value and not PLACEHOLDER.search(value) and not GUID.fullmatch(value):
            problems.append(f"{path} {value!r} is not a GUID")
    for path in ("developer.websiteUrl", "developer.privacyUrl", "developer.termsOfUseUrl"):
        value = _get(manifest, path)
        if isinstance(value, str) and value and not PLACEHOLDER.search(value):
            parts = urlsplit(value)
            if parts.scheme != "https" or not parts.hostname:
                problems.append(f"{path} {value!r} must be an https URL")
    accent = manifest.get("accentColor")
    if isinstance(accent, str) and accent and not re.fullmatch(r"#[0-9a-fA-F]{6}", accent):
        problems.append(f"accentColor {accent!r} must be a colour such as #1F5C99")
    bots = manifest.get("bots")
    if not isinstance(bots, list) or len(bots) != 1 or not isinstance(bots[0], dict):
        problems.append("bots must hold exactly one bot (Chaser's)")
    else:
        bot = bots[0]
        if bot.get("botId") != manifest.get("id"):
            problems.append("bots[0].botId must be the app id")
        scopes = bot.get("scopes")
        if not isinstance(scopes, list) or "personal" not in scopes or not set(scopes) <= BOT_SCOPES:
            problems.append(f"bots[0].scopes must include \"personal\" (owners' chats) and only "
                            f"{', '.join(sorted(BOT_SCOPES))}; got {scopes!r}")
    domains = manifest.get("validDomains", [])
    if not isinstance(domains, list):
        problems.append("validDomains must be a list of host names")
    else:
        for domain in domains:
            if isinstance(domain, str) and PLACEHOLDER.search(domain):
                continue  # named above
            if not isinstance(domain, str) or not re.fullmatch(r"(\*\.)?[A-Za-z0-9.-]+(:\d+)?", domain):
                problems.append(f"validDomains entry {domain!r} must be a host name such as chaser.council.example "
                                "(no https://, no path)")
    return problems


def icon_problems(manifest: dict[str, Any], folder: Path) -> list[str]:
    """The icons the manifest names, in ``folder``: PNG files of the sizes Teams wants, the
    outline white on transparent."""
    problems: list[str] = []
    for kind, size in ICON_SIZES.items():
        name = _get(manifest, f"icons.{kind}")
        if not isinstance(name, str) or not name:
            continue  # "is required", said by manifest_problems
        if "/" in name or "\\" in name:
            problems.append(f"icons.{kind} {name!r} must be a file name beside manifest.json (the package is flat)")
            continue
        path = folder / name
        try:
            with Image.open(path) as image:
                image.load()
                if image.format != "PNG":
                    problems.append(f"{path}: icons.{kind} must be a PNG, not {image.format}")
                    continue
                if image.size != size:
                    problems.append(f"{path}: icons.{kind} must be {size[0]}x{size[1]} pixels, not "
                                    f"{image.size[0]}x{image.size[1]}")
                if kind == "outline" and not _white_on_transparent(image):
                    problems.append(f"{path}: icons.outline must be white on a transparent background")
        except FileNotFoundError:
            problems.append(f"{path}: icons.{kind} names a file that does not exist")
        except (OSError, UnidentifiedImageError) as exc:
            problems.append(f"{path}: icons.{kind} cannot be read as an image ({exc})")
    return problems


def _white_on_transparent(image: Image.Image) -> bool:
    """Every pixel either shows white (at any opacity) or is fully transparent, and some are."""
    data = image.convert("RGBA").tobytes()
    pixels = [data[i:i + 4] for i in range(0, len(data), 4)]
    return any(p[3] == 0 for p in pixels) and all(p[3] == 0 or p[:3] == b"\xff\xff\xff" for p in pixels)


def build_package(details: PackageDetails, out: Path, template_dir: Path = TEMPLATE_DIR) -> Package:
    """Fill the template in ``template_dir``, check it and its icons, and write the zip to ``out``
    (manifest.json and the icons at its root). Nothing is written when anything is wrong: one
    InvalidValue lists every problem."""
    manifest_path = template_dir / "manifest.json"
    try:
        template = json.loads(manifest_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{manifest_path}: the Teams app manifest template is missing (give --template DIR, "
                          "the folder holding manifest.json and its icons)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{manifest_path}: cannot be read as JSON ({exc})") from None
    if not isinstance(template, dict):
        raise ConfigError(f"{manifest_path}: must hold one JSON object")
    manifest = fill_manifest(template, details)
    problems = manifest_problems(manifest) + icon_problems(manifest, template_dir)
    if problems:
        raise InvalidValue("the Teams app package was not written: " + "; ".join(problems))
    icons = [manifest["icons"]["color"], manifest["icons"]["outline"]]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        entries = [("manifest.json", (json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))]
        entries += [(name, (template_dir / name).read_bytes()) for name in dict.fromkeys(icons)]
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)
    try:
        out.write_bytes(buffer.getvalue())
    except OSError as exc:
        raise InvalidValue(f"--out {out}: cannot write the package ({exc.strerror or exc})") from None
    return Package(out, details.app_id, manifest["name"]["short"], manifest["version"],
                   tuple(name for name, _ in entries))


# --- installing for owners -------------------------------------------------------------------


@dataclass(frozen=True)
class Owner:
    email: str
    name: str
    teams_id: str | None


@dataclass
class Installation:
    """One person's outcome: ``installed`` now, ``already`` installed, ``failed`` (``error`` says
    why), or ``not tried`` (an earlier failure was the app's, and would have been the same here)."""

    email: str
    name: str
    user: str  # who Graph was asked about: the Entra object id, else the email as user principal name
    outcome: str = "not tried"
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.outcome in ("installed", "already")

    def as_json(self) -> dict[str, Any]:
        return {"email": self.email, "name": self.name, "user": self.user, "outcome": self.outcome,
                "error": self.error}


@dataclass
class Installations:
    catalog_app_id: str
    results: list[Installation] = field(default_factory=list)

    @property
    def failed(self) -> list[Installation]:
        return [r for r in self.results if not r.ok]

    def count(self, outcome: str) -> int:
        return sum(1 for r in self.results if r.outcome == outcome)


def install_for(client: GraphClient, catalog_app_id: str, owners: Sequence[Owner]) -> Installations:
    """Install the app for each owner, one at a time. A person Graph does not know (404) or
    refuses is reported and the rest go on; a failure that is the app's rather than the person's
    (no token, 401/403: the permission or its consent; no answer) stops there, as it would be the
    same for everyone after."""
    done = Installations(catalog_app_id)
    stopped = False
    for owner in owners:
        result = Installation(owner.email, owner.name, owner.teams_id or owner.email)
        done.results.append(result)
        if stopped:
            result.error = "not tried: the failure before was the app's, not the person's, and would be the same"
            continue
        try:
            result.outcome = "installed" if install_teams_app(client, result.user, catalog_app_id) else "already"
        except GraphError as exc:
            result.outcome = "failed"
            if exc.status == 404:
                result.error = (f"{result.user} is not a user of the tenant, or the app {catalog_app_id} is not in "
                                "its app catalog" + ("" if owner.teams_id else
                                                     " (give them a teams_id: their Entra object id)")
                                + f": {exc}")
            else:
                result.error = str(exc)
            stopped = exc.status is None or exc.status in (401, 403)
    return done
