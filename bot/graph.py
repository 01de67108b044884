"""Microsoft Graph for one Microsoft 365 mailbox: an app-only token and the HTTP calls, and the
mail source that reads replies from that mailbox's inbox; and, with a client made by
:meth:`GraphClient.for_users`, installing the Teams app for owners (:func:`install_teams_app`).

Sending (:class:`bot.channels.email_graph.GraphEmail`) and reading (:class:`GraphSource`) share
:class:`GraphClient`: one ``requests`` session, one msal ``ConfidentialClientApplication`` whose
token (client credentials: a secret, or a certificate) msal keeps until it expires, so a batch
of sends asks Entra once. Every failure becomes a :class:`GraphError` (a ChannelError) saying
what Graph said, classified once here for both users:

- 429 (throttled) and a 503 with ``Retry-After``: transient, ``retry_after`` as the service
  said; 429 is marked ``throttled`` (see ``jobs.dispatch.Dispatcher.record_failure``). Nothing
  here sleeps: the dispatcher reschedules.
- 401 and 403: the app registration, its consent or the access policy is wrong. That is the
  same for every message, so not ``permanent`` (which would move each message to the next
  channel as if the recipient were unreachable): retried, then parked, and the error names the
  permission to grant.
- 404 on the mailbox itself: ``graph_mailbox`` names no mailbox the app can reach (the same for
  every message, so not permanent either).
- any other 4xx: this request will never succeed as it is (a rejected recipient, a malformed
  message): permanent.
- 5xx, timeouts and refused connections: transient.

Outbound HTTPS trusts ``REQUESTS_CA_BUNDLE`` (or ``SSL_CERT_FILE``) when set, as the SMTP
channel trusts ``SSL_CERT_FILE``: a council behind a TLS-inspecting proxy names its CA there.
"""
from __future__ import annotations

import datetime as dt
import logging
import os
import re
import threading
from collections.abc import Iterator, Mapping
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote, urlsplit

import msal
import requests

from bot.channels.base import ChannelError, Secrets
from bot.inbox import MAX_BYTES, Ending, Mail
from chaser.errors import ConfigError

log = logging.getLogger("chaser.graph")

GRAPH_URL = "https://graph.microsoft.com"
AUTHORITY_URL = "https://login.microsoftonline.com"
SCOPE = "https://graph.microsoft.com/.default"  # the application permissions granted to the app
TENANT_ENV = "CHASER_GRAPH_TENANT_ID"
CLIENT_ID_ENV = "CHASER_GRAPH_CLIENT_ID"
CLIENT_SECRET_ENV = "CHASER_GRAPH_CLIENT_SECRET"
# Read through Secrets: CHASER_GRAPH_CERTIFICATE_FILE names the PEM file (private key and
# certificate), or CHASER_GRAPH_CERTIFICATE holds the PEM itself.
CERTIFICATE_ENV = "CHASER_GRAPH_CERTIFICATE"
# Lets an app install itself (the Teams app whose manifest's webApplicationInfo.id is this app
# registration) for any user: https://learn.microsoft.com/microsoftteams/platform/graph-api/proactive-bots-and-messages/graph-proactive-bots-and-messages
TEAMS_INSTALL_PERMISSION = "TeamsAppInstallation.ReadWriteSelfForUser.All"
DONE_FOLDER = "Chaser done"
FAILED_FOLDER = "Chaser failed"
PAGE_SIZE = 50
KEYS = {"graph_mailbox", "graph_url", "authority_url", "graph_timeout", "done_folder", "failed_folder"}
_PEM = re.compile(r"-----BEGIN ([A-Z ]+)-----.+?-----END \1-----", re.S)


class GraphError(ChannelError):
    """A Graph call that failed: ``status`` is the HTTP status (None: no answer), ``code`` Graph's
    error code ("ErrorInvalidRecipients")."""

    def __init__(self, text: str, *, status: int | None = None, code: str | None = None, permanent: bool = False,
                 retry_after: float | None = None, throttled: bool = False) -> None:
        super().__init__(text, permanent=permanent, retry_after=retry_after, throttled=throttled)
        self.status = status
        self.code = code


def check_settings(table: Mapping[str, Any]) -> dict[str, Any]:
    """The Graph keys of ``[channels.email]``, checked (a ConfigError names the key), with defaults."""
    mailbox = table.get("graph_mailbox")
    if not isinstance(mailbox, str) or "@" not in mailbox or any(c.isspace() or c in "/?#" for c in mailbox):
        raise ConfigError("'channels.email.graph_mailbox' is required for Microsoft 365: the address of the "
                          f"mailbox Chaser sends from and reads, such as \"chaser@council.example\"; got {mailbox!r}")
    settings: dict[str, Any] = {"mailbox": mailbox.strip(), **check_endpoints(table, "channels.email")}
    for key, default in (("done_folder", DONE_FOLDER), ("failed_folder", FAILED_FOLDER)):
        name = table.get(key, default)
        if not isinstance(name, str) or not name.strip() or "/" in name or "\\" in name:
            raise ConfigError(f"'channels.email.{key}' must be a folder name (no slashes), such as \"{default}\", "
                              f"got {name!r}")
        settings[key] = name.strip()
    if settings["done_folder"].casefold() == settings["failed_folder"].casefold():
        raise ConfigError("'channels.email.done_folder' and 'channels.email.failed_folder' must be different folders")
    return settings


def check_endpoints(table: Mapping[str, Any], section: str) -> dict[str, Any]:
    """``graph_url``, ``authority_url`` and ``graph_timeout`` of a ``[channels.*]`` table, checked
    (a ConfigError names ``section.key``), with their defaults: the global cloud, 30 seconds."""
    settings: dict[str, Any] = {}
    for key, default in (("graph_url", GRAPH_URL), ("authority_url", AUTHORITY_URL)):
        url = table.get(key, default)
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme != "https" or not parts.hostname or parts.query or parts.fragment:
            raise ConfigError(f"'{section}.{key}' must be an https URL such as \"{default}\", got {url!r}")
        settings[key] = url.rstrip("/")
    timeout = table.get("graph_timeout", 30)
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or timeout <= 0:
        raise ConfigError(f"'{section}.graph_timeout' must be a number of seconds above 0, got {timeout!r}")
    settings["timeout"] = float(timeout)
    return settings


def credential(secrets: Secrets) -> tuple[str, str, str | dict[str, str]]:
    """Tenant, client id and msal's client_credential (the secret, or the certificate's key and
    certificate) from the environment; a ConfigError names what is missing."""
    why = "Microsoft 365 (Graph) needs the Entra app registration's"
    tenant = secrets.require(TENANT_ENV, f"{why} directory (tenant) id")
    client_id = secrets.require(CLIENT_ID_ENV, f"{why} application (client) id")
    return tenant, client_id, client_credential(secrets, CLIENT_SECRET_ENV, CERTIFICATE_ENV, why)


def client_credential(secrets: Secrets, secret_env: str, certificate_env: str, why: str) -> str | dict[str, str]:
    """msal's client_credential: the secret in ``secret_env``, or the private key and certificate
    of the PEM in ``certificate_env`` (``<name>_FILE`` names the file); a ConfigError names what
    is missing (``why``: "<who> needs the Entra app registration's")."""
    secret = secrets.get(secret_env)
    pem = secrets.get(certificate_env)
    if secret and pem:
        raise ConfigError(f"both {secret_env} and {certificate_env}_FILE are set: use one of them")
    if secret:
        return secret
    if not pem:
        raise ConfigError(f"{secret_env} is not set (nor {secret_env}_FILE), nor "
                          f"{certificate_env}_FILE: {why} client secret or certificate")
    blocks = {match.group(1): match.group(0) for match in _PEM.finditer(pem)}
    key = next((block for kind, block in blocks.items() if kind.endswith("PRIVATE KEY")), None)
    certificate = blocks.get("CERTIFICATE")
    if key is None or certificate is None:
        raise ConfigError(f"{certificate_env}_FILE must be a PEM file holding both the private key and the "
                          "certificate uploaded to the app registration")
    return {"private_key": key, "public_certificate": certificate}


def trusted_cas() -> str | bool:
    """What outbound HTTPS trusts: ``REQUESTS_CA_BUNDLE`` or ``SSL_CERT_FILE`` if set, else certifi's CAs."""
    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("SSL_CERT_FILE") or True


class GraphClient:
    """Calls to Graph v1.0 for one mailbox, authorised by an app-only token. Thread-safe: the
    dispatcher's send threads share one client (msal's cache has its own lock; the session's
    connection pool is shared)."""

    def __init__(self, *, tenant: str, client_id: str, client_credential: str | dict[str, str], mailbox: str,
                 graph_url: str = GRAPH_URL, authority_url: str = AUTHORITY_URL, timeout: float = 30.0,
                 verify: str | bool | None = None, section: str = "channels.email") -> None:
        self.mailbox = mailbox  # "": a client for the tenant's users (for_users), not one mailbox
        self.section = section  # the config table its URLs came from, named in errors
        self.graph_url = graph_url.rstrip("/")
        self.authority = f"{authority_url.rstrip('/')}/{tenant}"
        self.client_id = client_id
        self.timeout = timeout
        self.session = HttpSession(timeout)
        self.session.verify = trusted_cas() if verify is None else verify
        self._credential = client_credential
        self._app: msal.ConfidentialClientApplication | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, table: Mapping[str, Any], secrets: Secrets) -> GraphClient:
        """The client for these settings and credentials: one per process, shared by the email
        channel and the mail source (so sending and reading use one token while it lasts)."""
        settings = check_settings(table)
        tenant, client_id, client_credential = credential(secrets)
        values = {"tenant": tenant, "client_id": client_id, "client_credential": client_credential,
                  "mailbox": settings["mailbox"], "graph_url": settings["graph_url"],
                  "authority_url": settings["authority_url"], "timeout": settings["timeout"],
                  "verify": trusted_cas()}
        key = repr(sorted(values.items()))
        with _SHARED_LOCK:
            if key not in _SHARED:
                _SHARED[key] = cls(**values)
            return _SHARED[key]

    @classmethod
    def for_users(cls, table: Mapping[str, Any], secrets: Secrets, *, section: str) -> GraphClient:
        """A client for calls about any user of the tenant rather than one mailbox (installing the
        Teams app for owners): the endpoints from ``table`` (see :func:`check_endpoints`), the
        credentials from the same ``CHASER_GRAPH_*`` variables as the mailbox uses."""
        settings = check_endpoints(table, section)
        tenant, client_id, client_credential = credential(secrets)
        return cls(tenant=tenant, client_id=client_id, client_credential=client_credential, mailbox="",
                   graph_url=settings["graph_url"], authority_url=settings["authority_url"],
                   timeout=settings["timeout"], section=section)

    @property
    def user_url(self) -> str:
        """``{graph_url}/v1.0/users/{mailbox}``: every call is about the one mailbox."""
        return f"{self.graph_url}/v1.0/users/{quote(self.mailbox, safe='@')}"

    def token(self) -> str:
        """An access token for Graph, from msal's cache while it lasts, else from Entra."""
        try:
            with self._lock:  # the app is built (OIDC discovery) once, by the first thread
                if self._app is None:
                    # instance_discovery=False: the authority is the one configured (a sovereign
                    # cloud, or loopback in tests), not one to be looked up at login.microsoftonline.com.
                    self._app = msal.ConfidentialClientApplication(
                        self.client_id, client_credential=self._credential, authority=self.authority,
                        http_client=self.session, instance_discovery=False)
            result = self._app.acquire_token_for_client(scopes=[SCOPE])
        except Exception as exc:  # noqa: BLE001 - requests' errors, msal's ValueErrors, a key it cannot sign with
            with self._lock:
                self._app = None  # discovery failed: try again next time
            raise GraphError(f"Microsoft 365: could not get a token from {self.authority}: {exc} (check {TENANT_ENV}, "
                             f"'{self.section}.authority_url' and the certificate, if one is used)") from exc
        if "access_token" not in result:
            description = " ".join(str(result.get("error_description") or "").split())[:300]
            raise GraphError(f"Microsoft 365: {self.authority} refused a token to app {self.client_id}: "
                             f"{result.get('error')}: {description} (check {TENANT_ENV}, {CLIENT_ID_ENV} and the "
                             "client secret or certificate)")
        return str(result["access_token"])

    def request(self, method: str, url: str, *, what: str, permission: str, **kwargs: Any) -> requests.Response:
        """One call (``url`` absolute, or relative to :attr:`user_url`), its failure a GraphError
        that says ``what`` was being done and, for 401/403, which ``permission`` it needs."""
        if not url.startswith("https://"):
            url = f"{self.user_url}{url}"
        headers = {"Authorization": f"Bearer {self.token()}", **kwargs.pop("headers", {})}
        try:
            response = self.session.request(method, url, headers=headers, timeout=self.timeout, **kwargs)
        except requests.RequestException as exc:  # refused, reset, timed out, bad certificate
            raise GraphError(f"Microsoft Graph {what}: {exc.__class__.__name__}: {exc}") from exc
        if response.status_code >= 400:
            raise self._error(response, what, permission)
        return response

    def _error(self, response: requests.Response, what: str, permission: str) -> GraphError:
        status = response.status_code
        try:
            body = response.json().get("error") or {}
        except ValueError:
            body = {}
        code = body.get("code") if isinstance(body, dict) else None
        message = " ".join(str(body.get("message") or response.reason or "").split())[:300] if isinstance(body, dict) \
            else ""
        said = f"{status} {code + ': ' if code else ''}{message}".strip()
        retry_after = _retry_after(response.headers.get("Retry-After"))
        if status == 429:
            return GraphError(f"Microsoft Graph {what}: throttled ({said})", status=status, code=code,
                              retry_after=retry_after if retry_after is not None else 60.0, throttled=True)
        if status in (401, 403):
            policy = f", and the access policy must let it use {self.mailbox}" if self.mailbox else ""
            return GraphError(f"Microsoft Graph {what}: {said}. The app registration {self.client_id} needs the "
                              f"{permission} application permission with admin consent{policy}",
                              status=status, code=code)
        if status == 404 and self.mailbox and code in ("ErrorInvalidUser", "MailboxNotEnabledForRESTAPI"):
            return GraphError(f"Microsoft Graph {what}: {said}: is 'channels.email.graph_mailbox' = "
                              f"{self.mailbox!r} a Microsoft 365 mailbox?", status=status, code=code)
        if status >= 500 or status == 408:
            return GraphError(f"Microsoft Graph {what}: {said}", status=status, code=code, retry_after=retry_after)
        return GraphError(f"Microsoft Graph {what}: {said}", status=status, code=code, permanent=True)

    def pages(self, url: str, *, what: str, permission: str, params: Mapping[str, str]) -> Iterator[dict[str, Any]]:
        """Every item of a collection, following ``@odata.nextLink`` (which carries the query on)."""
        next_url: str | None = url
        query: Mapping[str, str] | None = params
        while next_url:
            page = self.request("GET", next_url, what=what, permission=permission, params=query).json()
            yield from page.get("value", ())
            next_url, query = page.get("@odata.nextLink"), None

    def close(self) -> None:
        """Close the pooled connections (at shutdown); a later call opens new ones."""
        self.session.close()

    def __repr__(self) -> str:  # never the secret
        return f"GraphClient({self.mailbox or 'users'} at {self.graph_url}, app {self.client_id})"


class HttpSession(requests.Session):
    """A session with a default timeout (msal, given our session, passes none of its own) that
    reads the environment's proxy and CA settings once per host. Plain requests walks the whole
    of ``os.environ`` for them on every call (about 0.4 ms, bench/README.md). A change
    to ``HTTPS_PROXY``, ``NO_PROXY`` or ``REQUESTS_CA_BUNDLE`` is seen on restart."""

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self.timeout = timeout
        self._environment: dict[tuple[Any, ...], dict[str, Any]] = {}
        self._environment_lock = threading.Lock()

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout)
        return super().request(method, url, *args, **kwargs)

    def merge_environment_settings(self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any
                                   ) -> dict[str, Any]:
        parts = urlsplit(str(url))
        key = (parts.scheme, parts.netloc, tuple(sorted((proxies or {}).items())), stream, verify, cert)
        with self._environment_lock:
            found = self._environment.get(key)
        if found is None:
            found = super().merge_environment_settings(url, proxies, stream, verify, cert)
            with self._environment_lock:
                self._environment[key] = found
        return {name: dict(value) if isinstance(value, dict) else value for name, value in found.items()}


_SHARED: dict[str, GraphClient] = {}
_SHARED_LOCK = threading.Lock()


def _retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds: a number, or an HTTP date (RFC 9110 10.2.3)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
        return max(0.0, (when - dt.datetime.now(dt.timezone.utc)).total_seconds())
    except (TypeError, ValueError):
        return None


def install_teams_app(client: GraphClient, user: str, catalog_app_id: str) -> bool:
    """Install the Teams app ``catalog_app_id`` (its id in the tenant's app catalog, not the
    manifest's id) in the personal scope of ``user`` (an Entra object id or user principal name):
    True when installed now, False when it already was (409). Any other failure is a GraphError.

    https://learn.microsoft.com/graph/api/userteamwork-post-installedapps: 201 with no body;
    installing, Teams sends the bot a conversationUpdate for the new personal chat.
    """
    body = {"teamsApp@odata.bind": f"{client.graph_url}/v1.0/appCatalogs/teamsApps/{quote(catalog_app_id, safe='')}"}
    try:
        client.request("POST", f"{client.graph_url}/v1.0/users/{quote(user, safe='@')}/teamwork/installedApps",
                       what=f"installing the Teams app for {user}", permission=TEAMS_INSTALL_PERMISSION, json=body)
    except GraphError as exc:
        if exc.status == 409:  # "already installed": what was wanted
            return False
        raise
    return True


def odata_string(value: str) -> str:
    """A string literal for ``$filter``: quoted, with ``'`` doubled (OData's escape)."""
    return "'" + value.replace("'", "''") + "'"


class GraphSource:
    """Replies in the mailbox's inbox: the unread messages, read as MIME (``$value``), then moved
    to ``done_folder`` or ``failed_folder`` (made if missing) and marked read, never deleted.

    The unread messages are listed in full before any is moved: ``@odata.nextLink`` pages by
    offset, so moving messages out while paging would skip some. A mail whose recording failed is
    not finished: still unread in the inbox, it is read again at the next tick. A person who
    marks a reply read in Outlook before Chaser sees it takes it out of Chaser's view; the
    mailbox is Chaser's, not a person's, for that reason.
    """

    def __init__(self, client: GraphClient, *, done_folder: str = DONE_FOLDER, failed_folder: str = FAILED_FOLDER,
                 page_size: int = PAGE_SIZE) -> None:
        self.client = client
        self.folders = {"done": done_folder, "failed": failed_folder}
        self.page_size = page_size
        self.name = f"Microsoft 365 mailbox {client.mailbox}"
        self._folder_ids: dict[str, str] = {}

    @classmethod
    def from_settings(cls, table: Mapping[str, Any], secrets: Secrets | None) -> GraphSource:
        settings = check_settings(table)
        return cls(GraphClient.from_settings(table, secrets or Secrets()), done_folder=settings["done_folder"],
                   failed_folder=settings["failed_folder"])

    def fetch(self) -> Iterator[Mail]:
        """The unread mail in the inbox. Graph being throttled or down is logged and waited out
        (the replies are read at the next tick; the sweep and the sends go on); a refusal that
        needs a person (401, 403, an unknown mailbox, a bad request) is raised."""
        try:
            listed = list(self.client.pages(
                "/mailFolders/inbox/messages", what=f"listing the unread mail in {self.client.mailbox}",
                permission="Mail.ReadWrite",
                params={"$filter": "isRead eq false", "$select": "id,receivedDateTime", "$top": str(self.page_size)}))
        except GraphError as exc:
            if exc.permanent or exc.status in (401, 403, 404):
                raise
            log.warning("inbox: %s; the replies are read at the next tick", exc)
            return
        # Oldest first, as they arrived: a correction sent after a reply is recorded after it.
        # (Sorted here: Graph refuses $orderby on a property the $filter does not use.)
        listed.sort(key=lambda message: str(message.get("receivedDateTime") or ""))
        for message_id in (str(message["id"]) for message in listed):
            try:
                response = self.client.request("GET", f"/messages/{quote(message_id, safe='')}/$value",
                                               what=f"reading message {message_id}", permission="Mail.ReadWrite")
            except GraphError as exc:
                log.warning("inbox: cannot read %s (%s): left for the next tick", message_id, exc)
                continue
            data = response.content
            yield Mail(message_id, data if len(data) <= MAX_BYTES else None)

    def finish(self, mail: Mail, ending: Ending) -> None:
        """Move it, then mark the moved copy read (moving gives it a new id). In that order, a
        move that fails leaves it unread in the inbox, read again next time as a duplicate of
        itself; marked read first, it would stay in the inbox and never be read or moved."""
        try:
            folder = self._folder(ending)
            moved = self.client.request(
                "POST", f"/messages/{quote(mail.key, safe='')}/move", json={"destinationId": folder},
                what=f"moving {mail.key} to {self.folders[ending]!r}", permission="Mail.ReadWrite").json()
        except GraphError as exc:
            log.warning("inbox: could not move %s to %r (%s): it is read again next time",
                        mail.key, self.folders[ending], exc)
            return
        try:
            self.client.request("PATCH", f"/messages/{quote(str(moved['id']), safe='')}", json={"isRead": True},
                                what=f"marking {moved['id']} read", permission="Mail.ReadWrite")
        except GraphError as exc:  # moved out of the inbox all the same: only the flag is missing
            log.warning("inbox: could not mark %s read in %r (%s)", moved["id"], self.folders[ending], exc)

    def _folder(self, ending: Ending) -> str:
        """The id of the top-level folder for ``ending``, found by name or made."""
        if ending in self._folder_ids:
            return self._folder_ids[ending]
        name = self.folders[ending]
        what, permission = f"finding the folder {name!r}", "Mail.ReadWrite"
        found = list(self.client.pages("/mailFolders", what=what, permission=permission,
                                       params={"$filter": f"displayName eq {odata_string(name)}", "$select": "id"}))
        if found:
            folder_id = str(found[0]["id"])
        else:
            try:
                made = self.client.request("POST", "/mailFolders", json={"displayName": name},
                                           what=f"making the folder {name!r}", permission=permission)
                folder_id = str(made.json()["id"])
            except GraphError as exc:  # made by another Chaser process a moment ago
                if exc.code != "ErrorFolderExists":
                    raise
                folder_id = str(next(iter(self.client.pages(
                    "/mailFolders", what=what, permission=permission,
                    params={"$filter": f"displayName eq {odata_string(name)}", "$select": "id"})))["id"])
        self._folder_ids[ending] = folder_id
        return folder_id

    def close(self) -> None:
        self.client.close()
