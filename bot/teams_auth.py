"""Who is calling ``POST /teams/messages``: the Bot Connector's bearer token, checked as the
Bot Framework's own authentication does it (issue 14, "Inbound security").

Every request must carry ``Authorization: Bearer <JWT>`` that is:

- signed (RS256) with a key published at the ``jwks_uri`` of the OpenID metadata
  (``[channels.teams] openid_url``, default Bot Framework's), a key that, when it lists
  ``endorsements``, endorses the activity's ``channelId`` ("msteams");
- issued by ``https://api.botframework.com`` to ``aud`` = the bot's app id;
- within its ``nbf``/``exp`` with at most 5 minutes of clock skew, by Chaser's clock;
- for the activity it came with: its ``serviceurl`` claim is the activity's ``serviceUrl``
  (so a token taken from one request cannot send Chaser to another service URL).

Keys are fetched with PyJWT (``PyJWKSet``) over ``requests`` (trusting ``REQUESTS_CA_BUNDLE``)
and kept for a day; a token signed with a key not seen yet makes Chaser fetch the keys again
(key rotation) — at most once every :data:`REFETCH_SECONDS` for unknown keys, so tokens with
made-up key ids cannot make Chaser hammer the metadata endpoint. A failure raises
:class:`Refused` with the HTTP status to answer (401, or 403 for a valid token that does not fit
the activity) and a reason for the log; nothing is changed.
"""
from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import jwt
import requests

from bot.graph import trusted_cas

log = logging.getLogger("chaser.teams")

ISSUER = "https://api.botframework.com"
LEEWAY_SECONDS = 300  # the Bot Framework's clock skew allowance
KEYS_KEPT = dt.timedelta(hours=24)
REFETCH_SECONDS = 10.0  # between two fetches asked for by unknown key ids
ALGORITHMS = ["RS256"]

Clock = Callable[[], dt.datetime]


class Refused(Exception):
    """The request is not from the Bot Connector for this bot: answer ``status``, change nothing."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class TokenCheck:
    """Checks the Bot Connector's tokens for the bot ``app_id`` (thread-safe)."""

    def __init__(self, app_id: str, openid_url: str, *, clock: Clock, timeout: float = 10.0,
                 session: requests.Session | None = None) -> None:
        self.app_id = app_id
        self.openid_url = openid_url
        self.clock = clock
        self.timeout = timeout
        self.session = session or requests.Session()
        if session is None:
            self.session.verify = trusted_cas()
        self._keys: dict[str, jwt.PyJWK] = {}
        self._endorsements: dict[str, tuple[str, ...] | None] = {}
        self._fetched_at: dt.datetime | None = None
        self._refetched = 0.0  # time.monotonic() of the last fetch an unknown key id asked for
        self._lock = threading.Lock()

    def verify(self, authorization: str | None, activity: Mapping[str, Any]) -> dict[str, Any]:
        """The token's claims, or :class:`Refused`."""
        if not authorization or not authorization.startswith("Bearer "):
            raise Refused(401, "no bearer token")
        token = authorization[len("Bearer "):].strip()
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise Refused(401, f"not a JWT ({exc})") from None
        if header.get("alg") not in ALGORITHMS:
            raise Refused(401, f"signed with {header.get('alg')!r}, not RS256")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise Refused(401, "the token names no signing key")
        key, endorsements = self._key(kid)
        channel = activity.get("channelId")
        if endorsements is not None and channel not in endorsements:
            raise Refused(403, f"the signing key does not endorse channel {channel!r}")
        try:
            claims = jwt.decode(token, key.key, algorithms=ALGORITHMS, audience=self.app_id, issuer=ISSUER,
                                options={"verify_exp": False, "verify_nbf": False, "verify_iat": False,
                                         "require": ["exp", "iss", "aud"]})
        except jwt.InvalidAudienceError:
            raise Refused(401, "the token is for another app (aud)") from None
        except jwt.InvalidIssuerError:
            raise Refused(401, "the token was not issued by the Bot Framework (iss)") from None
        except jwt.PyJWTError as exc:
            raise Refused(401, f"the token does not verify ({exc.__class__.__name__}: {exc})") from None
        now = self.clock().timestamp()
        if not isinstance(claims.get("exp"), (int, float)) or now > claims["exp"] + LEEWAY_SECONDS:
            raise Refused(401, "the token has expired")
        nbf = claims.get("nbf")
        if isinstance(nbf, (int, float)) and now < nbf - LEEWAY_SECONDS:
            raise Refused(401, "the token is not valid yet")
        service_url = claims.get("serviceurl") or claims.get("serviceUrl")
        if not isinstance(service_url, str) or _same_url(service_url) != _same_url(activity.get("serviceUrl")):
            raise Refused(403, "the token's serviceurl is not the activity's serviceUrl")
        return claims

    def _key(self, kid: str) -> tuple[jwt.PyJWK, tuple[str, ...] | None]:
        with self._lock:
            stale = self._fetched_at is None or self.clock() - self._fetched_at > KEYS_KEPT
            if stale:
                self._fetch()
            elif kid not in self._keys and time.monotonic() - self._refetched >= REFETCH_SECONDS:
                self._refetched = time.monotonic()
                self._fetch()  # key rotation: a key published since
            if kid not in self._keys:
                raise Refused(401, f"signed with a key the Bot Framework does not publish ({kid[:40]!r})")
            return self._keys[kid], self._endorsements.get(kid)

    def _fetch(self) -> None:
        try:
            metadata = self._get(self.openid_url)
            jwks_uri = metadata.get("jwks_uri")
            if not isinstance(jwks_uri, str) or not jwks_uri.startswith("https://"):
                raise ValueError(f"the OpenID metadata at {self.openid_url} names no https jwks_uri")
            keys = self._get(jwks_uri)
            found: dict[str, jwt.PyJWK] = {}
            endorsements: dict[str, tuple[str, ...] | None] = {}
            for data in keys.get("keys") or ():
                if not isinstance(data, dict) or not data.get("kid") or data.get("kty") != "RSA":
                    continue
                try:
                    found[data["kid"]] = jwt.PyJWK(data, algorithm="RS256")
                except jwt.PyJWTError:
                    continue
                listed = data.get("endorsements")
                endorsements[data["kid"]] = tuple(str(e) for e in listed) if isinstance(listed, list) else None
        except (requests.RequestException, ValueError) as exc:
            log.warning("teams: could not fetch the signing keys (%s)", exc)
            if not self._keys:
                raise Refused(503, f"the Bot Framework's signing keys could not be fetched ({exc})") from None
            return  # keep the keys we have
        self._keys, self._endorsements, self._fetched_at = found, endorsements, self.clock()

    def _get(self, url: str) -> dict[str, Any]:
        response = self.session.get(url, timeout=self.timeout)
        response.raise_for_status()
        data = response.json()
        if not isinstance(data, dict):
            raise ValueError(f"{url} did not answer a JSON object")
        return data


def _same_url(url: Any) -> str:
    return str(url or "").strip().rstrip("/").lower()
