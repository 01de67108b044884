"""Microsoft Entra's token endpoint as the loopback fakes play it (tests/bot/graph_server.py for
Graph, tests/bot/teams_server.py for the Bot Connector): the OpenID configuration msal reads,
and the client-credentials grant with the checks Entra makes (grant type, client id, a
``/.default`` scope, a client secret or a client assertion signed by the app's certificate)."""
from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import parse_qs

import jwt
from cryptography import x509

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def openid_configuration(base: str) -> dict[str, Any]:
    """``{base}/v2.0/.well-known/openid-configuration`` for the tenant at ``base``."""
    return {"token_endpoint": f"{base}/oauth2/v2.0/token", "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "issuer": f"{base}/v2.0", "token_endpoint_auth_methods_supported":
            ["client_secret_post", "private_key_jwt", "client_secret_basic"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"]}


def grant(body: bytes, *, tenant: str, client_id: str, scope: str, client_secret: str | None,
          certificate_pem: bytes | None, token_url: str, expires_in: int, prefix: str) -> tuple[int, dict[str, Any]]:
    """``(status, JSON body)`` of a token request: a new token (``prefix`` + a random part) or Entra's error."""
    form = {key: values[0] for key, values in parse_qs(body.decode("utf-8")).items()}
    if form.get("grant_type") != "client_credentials":
        return 400, {"error": "unsupported_grant_type", "error_description": "AADSTS70003"}
    if form.get("client_id") != client_id:
        return 400, {"error": "unauthorized_client", "error_description":
                     f"AADSTS700016: Application with identifier '{form.get('client_id')}' was not found "
                     f"in the directory '{tenant}'."}
    if form.get("scope") != scope:
        return 400, {"error": "invalid_scope", "error_description":
                     f"AADSTS1002012: The provided value for scope {form.get('scope')} is not valid. "
                     "Client credential flows must have a scope value with /.default suffixed."}
    if not _authenticated(form, client_id, client_secret, certificate_pem, token_url):
        return 401, {"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided."}
    return 200, {"token_type": "Bearer", "expires_in": expires_in, "ext_expires_in": expires_in,
                 "access_token": f"{prefix}{uuid.uuid4().hex}"}


def _authenticated(form: dict[str, str], client_id: str, client_secret: str | None, certificate_pem: bytes | None,
                   token_url: str) -> bool:
    if "client_secret" in form:
        return client_secret is not None and form["client_secret"] == client_secret
    if form.get("client_assertion_type") != JWT_BEARER or certificate_pem is None:
        return False
    certificate = x509.load_pem_x509_certificate(certificate_pem)
    try:
        claims = jwt.decode(form.get("client_assertion", ""), certificate.public_key(),  # type: ignore[arg-type]
                            algorithms=["PS256", "RS256"], audience=token_url)
    except jwt.PyJWTError:
        return False
    return bool(claims.get("iss") == claims.get("sub") == client_id)
