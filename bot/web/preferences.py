"""The preferences page behind every email's ``List-Unsubscribe`` (and its footer link).

``GET /preferences/<token>`` shows how Chaser reaches the person the signed token names (which
channel, how often) as a form; ``POST`` with the form's ``csrf`` and ``nonce`` saves it.
``POST`` with the body ``List-Unsubscribe=One-Click`` is RFC 8058's one-click unsubscribe, which
a mail program sends by itself, without the page: it switches the person to one weekly summary
and answers 200 (see bot.preferences for why an unsubscribe is quieter, never silent). Every
change is told to the EDI lead. GET never changes anything: a link scanner may open it.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence

import anyio.to_thread
from sqlalchemy import Engine
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from bot.links import BadAnswerLink, read_preferences_token
from bot.preferences import CADENCES, UNCHANGED, change_preferences, channel_words, reachable_channels
from bot.render import environment
from bot.web.forms import BadRequest, csrf_token, from_our_page, new_nonce, read_form
from bot.web.pages import page
from storage.db import session_factory
from storage.models import Clock, Person

log = logging.getLogger("chaser.web")
ONE_CLICK = ("List-Unsubscribe", "One-Click")  # RFC 8058 section 3.1: the body of the POST
USUAL = ""  # the channel choice "the council's usual order"


class PreferencesPages:
    """The preferences routes, bound to one database, link secret and channel order."""

    def __init__(self, engine: Engine, *, secret: str, clock: Clock, order: Sequence[str],
                 edi_lead: str | None) -> None:
        self.sessions = session_factory(engine)
        self.secret = secret
        self.clock = clock
        self.order = tuple(order)
        self.edi_lead = edi_lead

    def routes(self) -> list[BaseRoute]:
        return [Route("/preferences/{token}", self.preferences, methods=["GET", "POST"], name="preferences")]

    async def preferences(self, request: Request) -> Response:
        token = request.path_params["token"]
        try:
            person_id = read_preferences_token(self.secret, token, now=self.clock())
        except BadAnswerLink as exc:
            return page(400, "This link does not work", [str(exc)])
        if request.method != "POST":
            return await anyio.to_thread.run_sync(self.show, token, person_id)
        try:
            fields = await read_form(request, multipart=True)
        except BadRequest as exc:
            return page(exc.status, "Nothing was changed", [str(exc)], headers={"Connection": "close"})
        if fields.get(ONE_CLICK[0]) == ONE_CLICK[1]:
            return await anyio.to_thread.run_sync(self.one_click, person_id)
        if not from_our_page(self.secret, token, fields):
            return page(403, "Nothing was changed", [
                "This form did not come from the page your link opens, so nothing was changed.",
                "Please open the link in the email again and save your choice from that page.",
            ])
        return await anyio.to_thread.run_sync(self.save, token, person_id, fields)

    def show(self, token: str, person_id: int) -> Response:
        with self.sessions() as session:
            person = session.get(Person, person_id)
            if person is None:
                return _gone()
            return self.form(token, person)

    def one_click(self, person_id: int) -> Response:
        with self.sessions() as session:
            person = session.get(Person, person_id)
            if person is None:
                return _gone()
            change = change_preferences(session, person, cadence="weekly", how="by one-click unsubscribe",
                                        now=self.clock(), edi_lead=self.edi_lead)
            session.commit()
            log.info("one-click unsubscribe from %s: %s", person.email, "weekly" if change.changed else "no change")
            return page(200, "You will get one summary a week", [
                "Chaser will send you one summary a week of the actions that need your answer, instead of "
                "each reminder. The EDI lead has been told.",
            ])

    def save(self, token: str, person_id: int, fields: dict[str, str]) -> Response:
        with self.sessions() as session:
            person = session.get(Person, person_id)
            if person is None:
                return _gone()
            choices = reachable_channels(person, self.order)
            channel = fields.get("channel", USUAL) if len(choices) > 1 else UNCHANGED
            cadence = fields.get("cadence", "")
            if (channel not in (*choices, USUAL, UNCHANGED)) or cadence not in CADENCES:
                return self.form(token, person, error="Choose one of the options below, then press Save.",
                                 status_code=422)
            change = change_preferences(session, person, channel=None if channel == USUAL else channel,
                                        cadence=cadence, how="on the preferences page", now=self.clock(),
                                        edi_lead=self.edi_lead)
            session.commit()
            lines = [f"Chaser will send you {CADENCES[person.cadence]}"
                     + (f", by {channel_words(person.channel)}." if person.channel else ".")]
            lines.append("The EDI lead has been told." if change.changed else "Nothing needed changing.")
            return page(200, "Your choice is saved", lines)

    def form(self, token: str, person: Person, *, error: str | None = None, status_code: int = 200) -> Response:
        choices = reachable_channels(person, self.order)
        html = environment().get_template("web/preferences.html.j2").render(
            person=person.name, cadences=CADENCES.items(), cadence=person.cadence,
            channels=[(kind, channel_words(kind)) for kind in choices] if len(choices) > 1 else [],
            channel=person.channel if person.channel in choices else USUAL, error=error,
            csrf=csrf_token(self.secret, token), nonce=new_nonce(),
        )
        return HTMLResponse(html, status_code=status_code)


def _gone() -> Response:
    return page(410, "You are no longer in the people directory",
                ["Chaser does not contact you any more. Ask the EDI lead if this is a mistake."])
