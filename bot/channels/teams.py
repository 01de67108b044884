"""Microsoft Teams: each nudge as an Adaptive Card in the owner's personal chat with the Chaser
bot, answered in place (issue 14).

**Protocol.** Chaser speaks the Bot Connector REST protocol itself with urllib3's connection
pools (msal gets the bot's token over ``requests``), not Microsoft's Teams SDK for Python
(``microsoft-teams-apps``): that SDK is an asyncio application with its own web server and
event loop, while Chaser is one sync model (the dispatcher's send threads, Starlette's thread
pool for the web app); the two Bot Connector calls Chaser needs, ``POST
/v3/conversations/{id}/activities`` and ``PUT …/activities/{id}``, are plain HTTPS. urllib3
rather than a ``requests`` session for them: requests' machinery around the same urllib3 call
cost 0.3 ms of CPU a send, an eighth of it (bench/README.md, Teams delivery); proxies are still
taken from ``HTTPS_PROXY``/``NO_PROXY`` (:class:`_Pools`). Cards are built with
``microsoft-teams-cards`` (bot.teams_cards).

``[channels.teams]``: ``enabled``, ``app_id`` (the bot's Entra application id), ``tenant_id``,
``token_url`` (default ``https://login.microsoftonline.com/<tenant_id>/oauth2/v2.0/token``),
``openid_url`` (default the Bot Framework OpenID metadata; bot.teams_auth checks inbound
tokens with it), ``digest_channel`` (a channel's conversation id, "19:…@thread.tacv2", where
the EDI lead's list is posted instead of their chat) with ``service_url`` (default
``https://smba.trafficmanager.net/teams/``), ``catalog_app_id`` (the app's id in the
organisation's catalogue, for ``chaser teams install``) and ``timeout``. The client secret is
``CHASER_TEAMS_CLIENT_SECRET``, or a certificate: ``CHASER_TEAMS_CERTIFICATE_FILE`` (a PEM with
the private key and the certificate). Outbound HTTPS trusts ``REQUESTS_CA_BUNDLE`` /
``SSL_CERT_FILE`` when set.

**Reaching a person.** Teams cannot message someone by email: the bot needs the conversation
reference the Bot Connector gave when the app was installed for them or they first wrote to
it (bot.teams_app stores it on ``people.teams_conversation``; the dispatcher hands it over in
``Recipient.conversations["teams"]``). :meth:`Teams.address` answers from it without I/O; with
none, routing moves on to the next channel. A 403 (the person blocked or removed the bot) or a
404 for their conversation marks them unreachable (``people.teams_blocked_at``) and is a
permanent failure: the message moves on to the next channel, and ``chaser teams status``
lists them for the EDI lead.

**Limits.** About 7 operations a second per conversation (with 8 per 2 s, 60 per 30 s and 1,800
an hour) and 50 a second per app and tenant, kept with :class:`bot.channels.limits.RateLimits`
(never waiting: a throttled ChannelError reschedules the row); a 429 holds that conversation
back for its ``Retry-After``.

**Duplicates.** The Bot Connector lets a bot post into a chat but not read the chat back, so
a resend after a lost lease cannot look for its earlier post: ``checks_duplicates`` is False
and the dispatcher counts such a resend as a possible duplicate.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote, urlsplit

import certifi
import msal
import requests
import urllib3
from pyrate_limiter import Duration, Rate
from sqlalchemy import Engine, update

from bot.channels.base import ChannelError, Envelope, Receipt, Recipient, Secrets, check_keys
from bot.channels.limits import RateLimits, seconds
from bot.graph import HttpSession, client_credential, trusted_cas
from bot.render import render
from bot.teams_cards import attachment, nudge_card, summary
from chaser.errors import ConfigError

log = logging.getLogger("chaser.teams")

KEYS = {"enabled", "app_id", "tenant_id", "token_url", "openid_url", "digest_channel", "service_url",
        "catalog_app_id", "timeout",
        # chaser teams install's Graph endpoints, when they are not [channels.email]'s (chaser.teams)
        "graph_url", "authority_url", "graph_timeout"}
TOKEN_URL = "https://login.microsoftonline.com/{tenant_id}/oauth2/v2.0/token"
OPENID_URL = "https://login.botframework.com/v1/.well-known/openidconfiguration"
SERVICE_URL = "https://smba.trafficmanager.net/teams/"
SCOPE = "https://api.botframework.com/.default"  # the Bot Connector, for a bot's own token
SECRET_ENV = "CHASER_TEAMS_CLIENT_SECRET"
CERTIFICATE_ENV = "CHASER_TEAMS_CERTIFICATE"  # read as CHASER_TEAMS_CERTIFICATE_FILE (a PEM file) or the PEM itself
GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
# Teams' limits for a bot: per conversation (thread) and per app in a tenant.
PER_CONVERSATION = [Rate(7, Duration.SECOND), Rate(8, Duration.SECOND * 2), Rate(60, Duration.SECOND * 30),
                    Rate(1800, Duration.HOUR)]
PER_APP = [Rate(50, Duration.SECOND)]
# 403 codes that mean "this person cannot be reached by the bot", not "the app is misconfigured".
BLOCKED_CODES = {"ConversationBlockedByUser", "BotNotInConversationRoster", "UserNotFound", "ForbiddenOperationException"}

Clock = Callable[[], dt.datetime]


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@dataclass(frozen=True)
class TeamsSettings:
    """``[channels.teams]``, checked, with defaults filled in."""

    enabled: bool
    app_id: str
    tenant_id: str
    token_url: str
    openid_url: str
    digest_channel: str | None
    service_url: str
    catalog_app_id: str | None
    timeout: float

    @property
    def authority(self) -> str:
        """msal's authority for ``token_url``: the URL without ``/oauth2/v2.0/token``."""
        return self.token_url[: -len("/oauth2/v2.0/token")]


def _https(table: Mapping[str, Any], key: str, default: str) -> str:
    url = table.get(key, default)
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme != "https" or not parts.hostname or parts.query or parts.fragment:
        raise ConfigError(f"'channels.teams.{key}' must be an https URL such as \"{default}\", got {url!r}")
    return url


def teams_settings(table: Mapping[str, Any]) -> TeamsSettings:
    """``[channels.teams]`` checked; a ConfigError names the key."""
    check_keys(table, "teams", KEYS)
    enabled = table.get("enabled", False)
    if not isinstance(enabled, bool):
        raise ConfigError(f"'channels.teams.enabled' must be true or false, got {enabled!r}")
    values: dict[str, str] = {}
    for key, what in (("app_id", "the bot's Microsoft App ID (the Entra app registration's application id)"),
                      ("tenant_id", "the organisation's Entra directory (tenant) id")):
        value = table.get(key)
        if value is None and not enabled:
            value = "00000000-0000-0000-0000-000000000000"  # only checked: nothing is sent
        if not isinstance(value, str) or not GUID.match(value.strip()):
            raise ConfigError(f"'channels.teams.{key}' must be {what}, a GUID such as "
                              f"\"6f0a3c1e-8a2b-4c5d-9e7f-0123456789ab\", got {value!r}")
        values[key] = value.strip().lower()
    token_url = _https(table, "token_url", TOKEN_URL.format(tenant_id=values["tenant_id"]))
    if not token_url.rstrip("/").endswith("/oauth2/v2.0/token"):
        raise ConfigError("'channels.teams.token_url' must be an Entra token endpoint ending in "
                          f"/oauth2/v2.0/token, such as \"{TOKEN_URL}\", got {token_url!r}")
    openid_url = _https(table, "openid_url", OPENID_URL)
    service_url = _https(table, "service_url", SERVICE_URL)
    digest = table.get("digest_channel")
    if digest is not None and (not isinstance(digest, str) or not digest.strip() or " " in digest.strip()):
        raise ConfigError("'channels.teams.digest_channel' must be a Teams channel's conversation id such as "
                          f"\"19:abc123@thread.tacv2\", got {digest!r}")
    catalog = table.get("catalog_app_id")
    if catalog is not None and (not isinstance(catalog, str) or not GUID.match(catalog.strip())):
        raise ConfigError("'channels.teams.catalog_app_id' must be the app's id in your organisation's app "
                          f"catalogue (a GUID: Teams admin centre, Manage apps), got {catalog!r}")
    timeout = table.get("timeout", 15)
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or timeout <= 0:
        raise ConfigError(f"'channels.teams.timeout' must be a number of seconds above 0, got {timeout!r}")
    return TeamsSettings(enabled=enabled, app_id=values["app_id"], tenant_id=values["tenant_id"],
                         token_url=token_url.rstrip("/"), openid_url=openid_url,
                         digest_channel=digest.strip() if digest else None,
                         service_url=service_url if service_url.endswith("/") else service_url + "/",
                         catalog_app_id=catalog.strip().lower() if catalog else None, timeout=float(timeout))


class TeamsLimits(RateLimits):
    """Teams' limits for a bot: per conversation and per app (module docstring)."""

    def __init__(self, clock: Clock = _utc_now) -> None:
        super().__init__(clock, "Teams")

    def take(self, conversation: str) -> None:
        self.admit(f"a message to {conversation}",
                   [(f"conversation:{conversation}", PER_CONVERSATION), ("app", PER_APP)],
                   [f"conversation:{conversation}", "app"])


class Teams:
    """Sends as one bot (its app id and credential) through the Bot Connector."""

    kind = "teams"
    checks_duplicates = False  # the Bot Connector cannot read a chat back (module docstring)

    def __init__(self, settings: TeamsSettings, *, credential: str | dict[str, str] | None,
                 limits: TeamsLimits | None | bool = True, clock: Clock | None = None,
                 engine: Engine | None = None, verify: str | bool | None = None) -> None:
        """``credential``: msal's client_credential (None: built only to check the config).
        ``limits``: True for Teams' limits, None or False for none (a benchmark), or one's own."""
        self.settings = settings
        self.clock: Clock = clock or _utc_now
        self.engine = engine
        self.limits: TeamsLimits | None = TeamsLimits(self._now) if limits is True else (limits or None)
        self._credential = credential
        self._app: msal.ConfidentialClientApplication | None = None
        self._lock = threading.Lock()
        self.session = HttpSession(settings.timeout)  # msal's, for the token; environment read once per host
        self.session.verify = trusted_cas() if verify is None else verify
        self.pools = _Pools(self.session.verify, settings.timeout)  # the Bot Connector's

    @classmethod
    def from_settings(cls, table: Mapping[str, Any], secrets: Secrets | None) -> Teams:
        settings = teams_settings(table)
        credential = None
        if secrets is not None:
            credential = client_credential(secrets, SECRET_ENV, CERTIFICATE_ENV,
                                           "the Teams bot needs its Entra app registration's")
        return cls(settings, credential=credential)

    def attach(self, *, engine: Engine, clock: Clock) -> None:
        """The dispatcher's database (where a 403 marks a person unreachable) and clock (limits)."""
        self.engine = engine
        self.clock = clock

    def _now(self) -> dt.datetime:
        return self.clock()

    # -- routing ----------------------------------------------------------------------------
    def address(self, recipient: Recipient) -> str | None:
        """The conversation id of the person's chat with the bot, if the bot has one (no I/O)."""
        conversation = recipient.conversations.get("teams") or {}
        return conversation.get("conversation_id") or None

    def shared_address(self, kind: str) -> str | None:
        """Where a message of ``kind`` goes when it is not for one person's chat: the EDI lead's
        list to ``digest_channel`` (so a lead with no chat with the bot gets it there)."""
        return self.settings.digest_channel if kind == "lead_list" else None

    # -- sending ----------------------------------------------------------------------------
    def send(self, envelope: Envelope) -> Receipt:
        """Post the card into the recipient's chat (the lead's list into ``digest_channel`` when set)."""
        if envelope.kind == "digest":
            raise ChannelError("a board digest goes to Teams through the board's Workflows webhook "
                               "(teams_webhook_env), not the bot", permanent=True)
        service_url, conversation = self._where(envelope)
        body = self._activity(envelope)
        answer = self._call("POST", service_url, f"v3/conversations/{quote(conversation, safe=':@')}/activities",
                            conversation, f"sending to {envelope.recipient_name}", self._person(envelope), json=body)
        activity = str(answer.get("id") or "")
        if not activity:
            raise ChannelError(f"Teams accepted the message to {envelope.recipient_name} but gave no activity id")
        return Receipt(self.kind, {"conversation": conversation, "activity": activity, "service_url": service_url,
                                   "outbox_id": str(envelope.outbox_id)})

    def update(self, receipt: Receipt, envelope: Envelope) -> Receipt:
        """Replace the card ``receipt`` names with ``envelope`` re-rendered (PUT of the activity)."""
        conversation, activity = receipt.ref.get("conversation"), receipt.ref.get("activity")
        service_url = receipt.ref.get("service_url") or self.settings.service_url
        if not conversation or not activity:
            raise ChannelError(f"the Teams receipt names no message to update: {dict(receipt.ref)!r}", permanent=True)
        original = receipt.ref.get("outbox_id")
        if original:  # the buttons go on naming the message they are in, not the update's outbox row
            envelope = replace(envelope, outbox_id=int(original))
        body = {**self._activity(envelope), "id": activity}
        path = f"v3/conversations/{quote(conversation, safe=':@')}/activities/{quote(activity, safe=':')}"
        self._call("PUT", service_url, path, conversation, f"updating the message to {envelope.recipient_name}",
                   self._person(envelope), json=body)
        return Receipt(self.kind, dict(receipt.ref))

    def _activity(self, envelope: Envelope) -> dict[str, Any]:
        """The message activity: the card, and the summary a notification shows, from one render."""
        rendered = render(envelope, email=False, chat_template="teams.txt")
        return {"type": "message", "summary": summary(envelope, rendered),
                "attachments": [attachment(nudge_card(envelope, rendered))]}

    def _person(self, envelope: Envelope) -> Recipient | None:
        """Whose chat a message goes to (None: the EDI lead's list in ``digest_channel``, nobody's
        chat, so a 403 there marks no one unreachable)."""
        return None if envelope.kind == "lead_list" and self.settings.digest_channel else envelope.recipient

    def _where(self, envelope: Envelope) -> tuple[str, str]:
        if envelope.kind == "lead_list" and self.settings.digest_channel:
            return self.settings.service_url, self.settings.digest_channel
        conversation = envelope.recipient.conversations.get("teams") or {}
        if not conversation.get("conversation_id"):
            raise ChannelError(f"{envelope.recipient_name} has no chat with the Chaser bot in Teams yet (the app "
                               "is not installed for them): see chaser teams status", permanent=True)
        return str(conversation.get("service_url") or self.settings.service_url), str(conversation["conversation_id"])

    # -- the Bot Connector ------------------------------------------------------------------
    def token(self) -> str:
        """The bot's access token for the Bot Connector, from msal's cache while it lasts."""
        if self._credential is None:
            raise ChannelError(f"the Teams channel was built without {SECRET_ENV} (only to check the config)")
        authority = self.settings.authority
        try:
            with self._lock:
                if self._app is None:
                    self._app = msal.ConfidentialClientApplication(
                        self.settings.app_id, client_credential=self._credential, authority=authority,
                        http_client=self.session, instance_discovery=False)
            result = self._app.acquire_token_for_client(scopes=[SCOPE])
        except Exception as exc:  # noqa: BLE001 - requests' errors, msal's ValueErrors
            with self._lock:
                self._app = None
            raise ChannelError(f"Teams: could not get the bot's token from {self.settings.token_url}: {exc} "
                               "(check 'channels.teams.tenant_id' and 'token_url')") from exc
        if "access_token" not in result:
            description = " ".join(str(result.get("error_description") or "").split())[:300]
            raise ChannelError(f"Teams: {self.settings.token_url} refused a token to app {self.settings.app_id}: "
                               f"{result.get('error')}: {description} (check 'channels.teams.app_id' and "
                               f"{SECRET_ENV} or the certificate)")
        return str(result["access_token"])

    def reply(self, service_url: str, conversation: str, text: str, *, reply_to: str | None = None) -> None:
        """A few plain-text words into a chat (an answer to someone who wrote to the bot)."""
        body: dict[str, Any] = {"type": "message", "text": text, "textFormat": "plain"}
        if reply_to:
            body["replyToId"] = reply_to
        self._call("POST", service_url, f"v3/conversations/{quote(conversation, safe=':@')}/activities",
                   conversation, "answering a chat", None, json=body)

    def member(self, service_url: str, conversation: str, user: str) -> dict[str, Any]:
        """The Teams account of ``user`` in ``conversation`` (``userPrincipalName``, ``email``,
        ``aadObjectId``): how a person who wrote to the bot is matched by email."""
        path = f"v3/conversations/{quote(conversation, safe=':@')}/members/{quote(user, safe=':')}"
        return self._call("GET", service_url, path, None, f"looking up {user}", None)

    def _call(self, method: str, service_url: str, path: str, conversation: str | None, what: str,
              recipient: Recipient | None, **kwargs: Any) -> dict[str, Any]:
        if conversation is not None and self.limits is not None:
            self.limits.take(conversation)
        url = service_url.rstrip("/") + "/" + path
        headers = {"Authorization": f"Bearer {self.token()}"}
        body = None
        if "json" in kwargs:
            body = json.dumps(kwargs["json"], ensure_ascii=False).encode("utf-8")
            headers["Content-Type"] = "application/json; charset=utf-8"
        try:
            response = self.pools.for_url(url).request(method, url, body=body, headers=headers)
        except (urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
            raise ChannelError(f"could not reach Teams at {service_url} while {what}: {exc.__class__.__name__}: "
                               f"{exc}") from None
        if response.status < 400:
            answer = _json_of(response)
            return answer if isinstance(answer, dict) else {}
        raise self._error(response, what, conversation, recipient)

    def _error(self, response: urllib3.BaseHTTPResponse, what: str, conversation: str | None,
               recipient: Recipient | None) -> ChannelError:
        status = response.status
        try:
            error = _json_of(response).get("error") or {}
        except AttributeError:
            error = {}
        code = str(error.get("code") or "") if isinstance(error, dict) else ""
        message = " ".join(str(error.get("message") or response.reason or "").split())[:300] \
            if isinstance(error, dict) else ""
        said = f"{status} {code + ': ' if code else ''}{message}".strip()
        if status == 429:
            retry_after = seconds(response.headers.get("Retry-After"))
            if self.limits is not None and conversation is not None:
                self.limits.hold(f"conversation:{conversation}", retry_after)
            return ChannelError(f"Teams rate limit: {said} while {what}; retry after {retry_after:g} s",
                                retry_after=retry_after, throttled=True)
        if status == 401:
            with self._lock:
                self._app = None  # a token the Bot Connector no longer takes: ask Entra afresh next time
            return ChannelError(f"Teams refused the bot's token while {what}: {said} (check 'channels.teams.app_id', "
                                "the Azure Bot resource and the app registration)")
        if status in (403, 404) and recipient is not None and (status == 404 or code in BLOCKED_CODES or not code):
            self._unreachable(recipient)
            return ChannelError(f"Teams cannot deliver to {recipient.name} while {what}: {said} (they blocked or "
                                "removed the Chaser app; it is skipped for them until it is installed again)",
                                permanent=True)
        if status >= 500 or status == 408:
            return ChannelError(f"Teams answered {said} while {what}",
                                retry_after=seconds(response.headers.get("Retry-After"), 0.0) or None)
        return ChannelError(f"Teams refused the message while {what}: {said}", permanent=True)

    def _unreachable(self, recipient: Recipient) -> None:
        """Remember that the bot cannot reach this person (``people.teams_blocked_at``)."""
        if self.engine is None or recipient.person_id is None:
            return
        from storage.models import Person  # storage only when attached to a database

        with self.engine.begin() as conn:
            conn.execute(update(Person.__table__).where(Person.__table__.c.id == recipient.person_id)
                         .values(teams_blocked_at=self._now()))
        log.info("teams: %s blocked or removed the bot: marked unreachable", recipient.name)

    def close(self) -> None:
        self.session.close()
        self.pools.clear()

    def __repr__(self) -> str:
        return f"Teams(app_id={self.settings.app_id!r})"


def _json_of(response: urllib3.BaseHTTPResponse) -> Any:
    """The body as JSON; {} when empty or not JSON (an error page of a proxy)."""
    try:
        return json.loads(response.data) if response.data else {}
    except ValueError:
        return {}


class _Pools:
    """urllib3 connection pools for the Bot Connector, shared by the send threads: a direct one,
    and one per proxy that ``HTTPS_PROXY``/``NO_PROXY`` name for a service URL's host (read
    once per host, as requests reads them). No retries or redirects of their own: a failure is
    the dispatcher's to retry."""

    def __init__(self, verify: str | bool, timeout: float) -> None:
        options: dict[str, Any] = {"maxsize": 32, "retries": False, "timeout": urllib3.Timeout(connect=timeout,
                                                                                            read=timeout)}
        if verify is False:
            options["cert_reqs"] = "CERT_NONE"
        elif isinstance(verify, str) and os.path.isdir(verify):
            options["ca_cert_dir"] = verify
        else:
            options["ca_certs"] = verify if isinstance(verify, str) else certifi.where()
        self._options = options
        self._direct = urllib3.PoolManager(num_pools=4, **options)
        self._by_host: dict[tuple[str, str], urllib3.PoolManager] = {}
        self._proxies: dict[str, urllib3.ProxyManager] = {}
        self._lock = threading.Lock()

    def for_url(self, url: str) -> urllib3.PoolManager:
        parts = urlsplit(url)
        key = (parts.scheme, parts.netloc)
        manager = self._by_host.get(key)
        if manager is None:
            found = requests.utils.get_environ_proxies(url)
            proxy = found.get(parts.scheme) or found.get("all")
            with self._lock:
                if proxy:
                    if proxy not in self._proxies:
                        self._proxies[proxy] = urllib3.ProxyManager(proxy, num_pools=4, **self._options)
                    manager = self._proxies[proxy]
                else:
                    manager = self._direct
                self._by_host[key] = manager
        return manager

    def clear(self) -> None:
        with self._lock:
            self._direct.clear()
            for manager in self._proxies.values():
                manager.clear()
