"""What every page of the web app shares: the security headers and the one-message page."""
from __future__ import annotations

from collections.abc import Mapping

from starlette.responses import HTMLResponse

from bot.render import environment

# Set on every response by bot.web.app.SecurityHeaders (a page may set its own instead). The
# pages use inline style attributes only: no script, no image, no font, no stylesheet file.
SECURITY_HEADERS: Mapping[str, str] = {
    "Content-Security-Policy": ("default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
                                "frame-ancestors 'none'; base-uri 'none'"),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # the answer token is in the address: never hand it on
    "Cache-Control": "no-store",  # a shared computer's back button must not show someone's answer
}


def render_page(title: str, lines: list[str]) -> str:
    return environment().get_template("web/message.html.j2").render(title=title, lines=lines)


def page(status: int, title: str, lines: list[str], *, headers: Mapping[str, str] | None = None) -> HTMLResponse:
    """A page with a heading and a few sentences (errors, the thank-you page)."""
    return HTMLResponse(render_page(title, lines), status_code=status, headers=dict(headers or {}))
