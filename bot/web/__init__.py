"""The web layer: one Starlette application served by uvicorn.

``create_app`` (bot.web.app) builds the app — the owner's answer page (bot.web.answer), the
page of all their actions (bot.web.mine), their forms (bot.web.forms), ``/healthz`` and
whatever routes the runtime mounts; ``start_web`` runs it in a thread of ``chaser run`` and
``serve_forever`` alone (bot.web.server).
"""
from __future__ import annotations

from bot.web.answer import AnswerPages, FormAnswer
from bot.web.app import MAX_BODY_BYTES, Health, create_app
from bot.web.forms import MAX_FORM_BYTES, csrf_token
from bot.web.mine import MinePages
from bot.web.server import REQUEST_TIMEOUT_SECONDS, WebServer, WebServerError, listen_address, serve_forever, start_web

__all__ = [
    "MAX_BODY_BYTES", "MAX_FORM_BYTES", "REQUEST_TIMEOUT_SECONDS", "AnswerPages", "FormAnswer", "Health", "MinePages", "WebServer",
    "WebServerError", "create_app", "csrf_token", "listen_address", "serve_forever", "start_web",
]
