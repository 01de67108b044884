"""The Teams fake itself (tests/bot/teams_server.py): it answers as Entra, the Bot Connector and
the Bot Framework's key service answer, through msal, requests and PyJWT."""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import msal
import pytest
import requests
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.bot.teams_server import SCOPE, TeamsFake, activity, teams_server


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The test CA's PEM, trusted as an operator would: REQUESTS_CA_BUNDLE (which wins over a
    session's ``verify`` in requests)."""
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(path))
    return str(path)


@pytest.fixture
def teams(ca: trustme.CA) -> Iterator[TeamsFake]:
    with teams_server(TeamsFake(), ca) as served:
        yield served


@pytest.fixture
def session(teams: TeamsFake, ca_file: str) -> requests.Session:
    """A session carrying a token Entra issued, as the channel's would."""
    web = requests.Session()
    web.verify = ca_file
    answer = web.post(teams.token_url, data={"grant_type": "client_credentials", "client_id": teams.app_id,
                                             "client_secret": teams.client_secret, "scope": SCOPE})
    assert answer.status_code == 200, answer.text
    web.headers["Authorization"] = f"Bearer {answer.json()['access_token']}"
    return web


def card(version: str = "1.5", **content: Any) -> dict[str, Any]:
    body = {"type": "AdaptiveCard", "version": version, "body": [{"type": "TextBlock", "text": "HW 3 is due"}]}
    body.update(content)
    return {"type": "message", "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive",
                                                "content": body}]}


def test_msal_gets_a_token_with_a_secret_or_a_certificate_and_entra_refuses_the_rest(
        teams: TeamsFake, ca: trustme.CA, ca_file: str) -> None:
    web = requests.Session()
    web.verify = ca_file

    def app(credential: Any, tenant: str = teams.tenant) -> msal.ConfidentialClientApplication:
        return msal.ConfidentialClientApplication(teams.app_id, client_credential=credential,
                                                  authority=f"{teams.url}/{tenant}", http_client=web,
                                                  instance_discovery=False)

    token = app(teams.client_secret).acquire_token_for_client(scopes=[SCOPE])
    assert token["expires_in"] == 3600 and token["access_token"] in teams.tokens

    leaf = ca.issue_cert("chaser-bot", key_type=trustme.KeyType.RSA)
    teams.certificate_pem = leaf.cert_chain_pems[0].bytes()
    der = x509.load_pem_x509_certificate(teams.certificate_pem).public_bytes(serialization.Encoding.DER)
    signed = app({"private_key": leaf.private_key_pem.bytes().decode(),
                  "thumbprint": hashlib.sha1(der).hexdigest()}).acquire_token_for_client(scopes=[SCOPE])
    assert signed["access_token"] in teams.tokens

    assert "AADSTS1002012" in app(teams.client_secret).acquire_token_for_client(
        scopes=["https://graph.microsoft.com/.default"])["error_description"]
    assert app("wrong").acquire_token_for_client(scopes=[SCOPE])["error"] == "invalid_client"
    with pytest.raises(ValueError, match="AADSTS90002|tenant"):  # msal reads the authority's metadata first
        app(teams.client_secret, tenant="22222222-2222-2222-2222-222222222222").acquire_token_for_client(
            scopes=[SCOPE])
    assert len(teams.tokens) == 2


def test_a_card_is_posted_to_a_new_conversation_then_replaced_in_place(
        teams: TeamsFake, session: requests.Session) -> None:
    created = session.post(f"{teams.service_url}v3/conversations", json={
        "bot": {"id": f"28:{teams.app_id}"}, "members": [{"id": "29:priya"}], "tenantId": teams.tenant,
        "isGroup": False, "channelData": {"tenant": {"id": teams.tenant}}})
    assert created.status_code == 201 and created.json() == {"id": "a:conv-29:priya"}
    conversation = created.json()["id"]

    url = f"{teams.service_url}v3/conversations/{conversation}/activities"
    first, second = (session.post(url, json=card(title=title)) for title in ("one", "two"))
    assert first.status_code == second.status_code == 201
    assert first.json()["id"] != second.json()["id"]

    replaced = session.put(f"{url}/{first.json()['id']}", json=card(version="1.4", title="answered"))
    assert replaced.status_code == 200 and replaced.json() == {"id": first.json()["id"]}
    assert [c["title"] for c in teams.cards(conversation)] == ["answered", "two"]
    assert teams.activities(conversation)[0]["id"] == first.json()["id"]

    reply = session.post(f"{url}/{second.json()['id']}", json={"type": "message", "text": "Thanks"})
    assert reply.status_code == 201
    assert teams.activities(conversation)[-1] == {"type": "message", "text": "Thanks", "replyToId":
                                                  second.json()["id"], "id": reply.json()["id"]}
    assert len(teams.cards(conversation)) == 2  # a text reply has no card

    missing = session.put(f"{url}/1:999", json=card())
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "ActivityNotFound"

    auto = session.post(f"{teams.service_url}v3/conversations/a:conv-new/activities", json={"type": "message",
                                                                                          "text": "hi"})
    assert auto.status_code == 201 and teams.activities("a:conv-new")[0]["text"] == "hi"
    teams.auto_create = False
    unknown = session.post(f"{teams.service_url}v3/conversations/a:conv-other/activities", json=card())
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "ConversationNotFound"

    assert teams.calls("PUT", r"/activities/")[0].headers["authorization"] == session.headers["Authorization"]


def test_the_connector_refuses_what_teams_refuses(teams: TeamsFake, session: requests.Session) -> None:
    url = f"{teams.service_url}v3/conversations/a:conv-1/activities"

    def refused(response: requests.Response) -> tuple[int, str]:
        return response.status_code, response.json()["error"]["code"]

    unauthenticated = requests.post(url, json=card(), verify=session.verify)
    assert unauthenticated.status_code == 401
    assert unauthenticated.json() == {"message": "Authorization has been denied for this request."}
    assert requests.post(url, json=card(), verify=session.verify,
                         headers={"Authorization": "Bearer made-up"}).status_code == 401

    assert refused(session.post(url, json=card(version="1.6"))) == (400, "BadArgument")
    assert refused(session.post(url, json=card(body={"type": "TextBlock"}))) == (400, "BadArgument")
    assert refused(session.post(url, json={"type": "typing!", "text": "x"})) == (400, "BadArgument")
    assert refused(session.post(url, json={"type": "message"})) == (400, "BadArgument")
    assert refused(session.post(url, data=b"{not json", headers={"Content-Type": "application/json"})) == (
        400, "BadArgument")
    big = card()
    big["attachments"][0]["content"]["body"] = [{"type": "TextBlock", "text": "x" * 1000}] * 29
    assert refused(session.post(url, json=big)) == (413, "MessageSizeTooBig")
    assert teams.activities("a:conv-1") == []

    teams.blocked.add("a:conv-1")
    blocked = session.post(url, json=card())
    assert blocked.status_code == 403
    assert blocked.json() == {"error": {"code": "ConversationBlockedByUser",
                                        "message": "User blocked the conversation with the bot."}}
    teams.blocked.add("a:conv-29:gone")
    assert refused(session.post(f"{teams.service_url}v3/conversations", json={
        "bot": {"id": f"28:{teams.app_id}"}, "members": [{"id": "29:gone"}], "tenantId": teams.tenant})) == (
        403, "ConversationBlockedByUser")


def test_throttling_and_chosen_failures_answer_with_retry_after(
        teams: TeamsFake, session: requests.Session) -> None:
    url = f"{teams.service_url}v3/conversations/a:conv-1/activities"
    teams.throttle_every(3, retry_after="2")
    statuses = [session.post(url, json=card()) for _ in range(6)]
    assert [r.status_code for r in statuses] == [201, 201, 429, 201, 201, 429]
    assert statuses[2].headers["Retry-After"] == "2" and statuses[2].json()["error"]["code"] == "Throttled"
    teams.throttle_every(0)

    teams.fail("POST", r"/activities$", 503, times=2, retry_after="7")
    failed = [session.post(url, json=card()) for _ in range(3)]
    assert [r.status_code for r in failed] == [503, 503, 201]
    assert failed[0].headers["Retry-After"] == "7" and failed[0].json()["error"]["code"] == "ServiceUnavailable"
    assert len(teams.activities("a:conv-1")) == 5
    assert len(teams.calls("POST", r"/activities$")) == 9


def test_inbound_tokens_verify_against_the_published_keys_until_a_rotation(
        teams: TeamsFake, ca_file: str) -> None:
    metadata = requests.get(teams.openid_url, verify=ca_file).json()
    assert metadata["issuer"] == "https://api.botframework.com"
    assert metadata["id_token_signing_alg_values_supported"] == ["RS256"]
    keys = jwt.PyJWKClient(metadata["jwks_uri"], cache_keys=False, cooldown_duration=0,  # no wall-clock waits
                           ssl_context=ssl.create_default_context(cafile=ca_file))
    [published] = keys.get_jwk_set().keys
    assert published.key_id == teams.kid and published.Algorithm
    assert requests.get(metadata["jwks_uri"], verify=ca_file).json()["keys"][0]["endorsements"] == ["msteams"]

    def verify(token: str) -> dict[str, Any]:
        return jwt.decode(token, keys.get_signing_key_from_jwt(token).key, algorithms=["RS256"],
                          audience=teams.app_id, issuer="https://api.botframework.com")

    then = dt.datetime(2026, 12, 7, 9, 0, tzinfo=dt.timezone.utc)
    claims = verify(teams.sign({"appid": "bot-connector"}, now=dt.datetime.now(dt.timezone.utc)))
    assert claims["serviceurl"] == teams.service_url and claims["appid"] == "bot-connector"
    assert jwt.decode(teams.sign(now=then, expires_in=60), options={"verify_signature": False})["exp"] == int(
        then.timestamp()) + 60
    with pytest.raises(jwt.InvalidSignatureError):
        verify(teams.sign(key=teams.stranger_key()))
    with pytest.raises(jwt.InvalidAudienceError):
        verify(teams.sign(audience="someone-else"))

    old = teams.sign()
    fetched = teams.keys_fetches
    teams.rotate()
    assert teams.kid != published.key_id
    assert verify(teams.sign())["aud"] == teams.app_id  # an unknown kid: the client fetches the keys again
    assert teams.keys_fetches == fetched + 1
    with pytest.raises(jwt.PyJWKClientError):  # and the old key is gone from them
        verify(old)
    assert teams.metadata_fetches == 1


def test_an_activity_is_shaped_as_teams_sends_it(teams: TeamsFake) -> None:
    submitted = activity(teams, value={"action": "done", "outbox": 7}, from_id="29:priya",
                         aad_object_id="aad-priya", reply_to="1:5")
    assert submitted["channelId"] == "msteams" and submitted["serviceUrl"] == teams.service_url
    assert submitted["from"] == {"id": "29:priya", "name": "Teams User", "aadObjectId": "aad-priya"}
    assert submitted["recipient"]["id"] == f"28:{teams.app_id}"
    assert submitted["conversation"] == {"id": "a:conv-1", "conversationType": "personal",
                                         "tenantId": teams.tenant}
    assert submitted["channelData"] == {"tenant": {"id": teams.tenant}}
    assert submitted["value"] == {"action": "done", "outbox": 7} and submitted["replyToId"] == "1:5"
    assert "text" not in submitted and "name" not in submitted
    invoke = activity(teams, type="invoke", name="adaptiveCard/action", value={"action": {"verb": "done"}})
    assert invoke["id"] != submitted["id"] and invoke["from"]["aadObjectId"]
    json.dumps(invoke)  # what goes over the wire


def test_activity_ids_stay_unique_over_a_hundred_posts_on_one_connection(
        teams: TeamsFake, session: requests.Session) -> None:
    url = f"{teams.service_url}v3/conversations/a:conv-1/activities"
    for _ in range(100):
        assert session.post(url, json=card()).status_code == 201
    assert len({a["id"] for a in teams.activities("a:conv-1")}) == 100
