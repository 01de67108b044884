"""Microsoft Teams: the app package to upload, installing the app for owners through Graph, and
who the bot can reach (``status``)."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from bot.channels.base import Secrets
from bot.graph import CLIENT_ID_ENV, GraphClient
from chaser.cli.common import FORMAT, Context, console, emit_json, escape, handles_errors, pass_ctx
from chaser.errors import InvalidValue
from chaser.teams import TEMPLATE_DIR, Owner, PackageDetails, build_package, check_guid, host_of, install_for
from storage.people import teams_reach
from storage.tracker import find_people

# Where to find the catalog id, for the message that asks for it.
CATALOG_HELP = ("the app's id in your tenant's app catalog, which Teams gives the app when it is uploaded (the App "
                "ID on its page in the Teams admin centre, Teams apps > Manage apps), not the manifest's id")


def teams_table(ctx: Context) -> dict[str, Any]:
    """``[channels.teams]`` as written (empty when there is none); its keys are read with ``.get``."""
    table = ctx.config.channels.table("teams")
    return table if isinstance(table, dict) else {}


@click.group()
def teams() -> None:
    """The Microsoft Teams app: build its package, install it for owners, see who it reaches."""


@teams.command("status")
@FORMAT
@pass_ctx
@handles_errors
def status(ctx: Context, fmt: str) -> None:
    """Owners of open actions the Teams bot cannot reach yet (the app is not installed for them,
    or they blocked or removed it), then those it can. Until the bot can reach someone, their
    messages go to the next channel in [channels] order."""
    with ctx.session() as session:
        rows = [{"name": r.person.name, "email": r.person.email, "open_actions": r.open_actions,
                 "reachable": r.reachable, "reason": r.reason} for r in teams_reach(session)]
    if fmt == "json":
        emit_json(rows)
        return
    out = console()
    if not rows:
        out.print("Nobody answers for an open action yet.")
        return
    waiting = [r for r in rows if not r["reachable"]]
    table = Table(title=f"Teams: {len(waiting)} of {len(rows)} owners cannot be reached by the bot yet",
                  title_justify="left")
    for name in ("name", "email", "open actions", "teams"):
        table.add_column(name)
    for r in rows:
        where = escape(r["reason"]) if r["reachable"] else f"[red]{escape(r['reason'])}[/red]"
        table.add_row(escape(r["name"]), escape(r["email"]), str(r["open_actions"]), where)
    out.print(table)
    if waiting:
        out.print("Install the Chaser app for them (chaser teams install --all, or an app setup policy in the "
                  "Teams admin centre); meanwhile their reminders go to the next channel.")


@teams.command("package")
@click.option("--app-id", metavar="GUID", help="the bot's Entra app (client) id (default: [channels.teams] app_id)")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=Path("chaser-teams.zip"),
              show_default=True, help="the zip to write")
@click.option("--name", help="the app's name in Teams, up to 30 characters (default: Chaser)")
@click.option("--version", "version", metavar="X.Y.Z", help="the app's version; raise it for each new upload "
              "(default: the template's, 1.0.0)")
@click.option("--host", metavar="HOST", help="the host Chaser is served on, for validDomains "
              "(default: the host of [web] base_url when it is https)")
@click.option("--developer", metavar="NAME", help="who publishes the app: the council (up to 32 characters)")
@click.option("--website-url", metavar="URL", help="the publisher's web site (default: [web] base_url when https)")
@click.option("--privacy-url", metavar="URL", help="the privacy notice covering Chaser")
@click.option("--terms-url", metavar="URL", help="the terms of use")
@click.option("--template", "template_dir", type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="a folder holding your own manifest.json, color.png and outline.png (default: Chaser's teams/)")
@FORMAT
@pass_ctx
@handles_errors
def package(ctx: Context, app_id: str | None, out: Path, name: str | None, version: str | None, host: str | None,
            developer: str | None, website_url: str | None, privacy_url: str | None, terms_url: str | None,
            template_dir: Path | None, fmt: str) -> None:
    """Write the Teams app package: manifest.json with the app id filled in, and its two icons.

    Upload the zip in the Teams admin centre (Manage apps > Upload new app) or as a custom app.
    """
    table = teams_table(ctx)
    configured = table.get("app_id")
    if app_id is None and not (isinstance(configured, str) and configured.strip()):
        raise InvalidValue("--app-id is required (or set app_id in [channels.teams]): the Application (client) ID "
                           "of the bot's Entra app registration")
    named = "--app-id" if app_id is not None else "'channels.teams.app_id'"
    app_id = check_guid(app_id if app_id is not None else str(configured), named)
    base_host = host_of(ctx.config.web_base_url)
    details = PackageDetails(
        app_id=app_id, host=host or base_host, name=name, version=version, developer=developer,
        website_url=website_url or (ctx.config.web_base_url if base_host else None),
        privacy_url=privacy_url, terms_url=terms_url)
    built = build_package(details, out, template_dir or TEMPLATE_DIR)
    if fmt == "json":
        emit_json(built.as_json())
        return
    click.echo(f"Wrote {built.path}: {built.name} {built.version} for app {built.app_id} "
               f"({', '.join(built.files)}). Upload it in the Teams admin centre (Manage apps > Upload new app).")


@teams.command("install")
@click.option("--person", "emails", multiple=True, metavar="EMAIL", help="install for this person (repeatable)")
@click.option("--all", "everyone", is_flag=True, help="install for everyone who answers for an open action")
@click.option("--catalog-id", metavar="GUID",
              help="the app's id in the tenant's app catalog (default: [channels.teams] catalog_app_id)")
@FORMAT
@pass_ctx
@handles_errors
def install(ctx: Context, emails: tuple[str, ...], everyone: bool, catalog_id: str | None, fmt: str) -> None:
    """Install the Chaser app in owners' Teams through Microsoft Graph, so the bot can message them.

    Needs the TeamsAppInstallation.ReadWriteSelfForUser.All application permission, with admin
    consent, on the app registration named by CHASER_GRAPH_CLIENT_ID (the bot's own, as the
    manifest's webApplicationInfo names it). Someone who has the app already is left as they are.
    """
    if bool(emails) == everyone:
        raise InvalidValue("give --person EMAIL (one or more) or --all, not both" if everyone
                           else "give --person EMAIL (one or more), or --all for everyone who answers for an open action")
    table = teams_table(ctx)
    configured = table.get("catalog_app_id")
    if catalog_id is None and not (isinstance(configured, str) and configured.strip()):
        raise InvalidValue(f"--catalog-id is required (or set catalog_app_id in [channels.teams]): {CATALOG_HELP}")
    catalog_id = check_guid(catalog_id if catalog_id is not None else str(configured),
                            "--catalog-id" if catalog_id is not None else "'channels.teams.catalog_app_id'")
    with ctx.session() as session:
        # --all: those the bot cannot reach yet; not someone who blocked or removed the app (their choice).
        people = [r.person for r in teams_reach(session) if not r.reachable and r.person.teams_blocked_at is None] \
            if everyone else find_people(session, emails)
    owners = [Owner(p.email, p.name, p.teams_id) for p in people]
    secrets = Secrets()
    # The Graph endpoints (a national cloud, or loopback in tests): [channels.teams], else those
    # [channels.email] gives for its Microsoft 365 mailbox, else the global service.
    email_table = ctx.config.channels.table("email")
    section = "channels.teams" if any(k in table for k in ("graph_url", "authority_url", "graph_timeout")) \
        else "channels.email"
    client = GraphClient.for_users(table if section == "channels.teams" else email_table, secrets, section=section)
    try:
        done = install_for(client, catalog_id, owners)
    finally:
        client.close()
    app_id = table.get("app_id")
    graph_app = secrets.get(CLIENT_ID_ENV)
    mismatch = (isinstance(app_id, str) and graph_app is not None
                and app_id.strip().lower() != graph_app.strip().lower())
    if fmt == "json":
        emit_json({"catalog_app_id": catalog_id, "results": [r.as_json() for r in done.results]})
    elif not done.results:
        click.echo("Nobody answers for an open action yet: nothing to install.")
    else:
        out = console()
        rows = Table(title=f"Chaser in Teams for {len(done.results)} person(s)", title_justify="left")
        for column in ("person", "asked Graph about", "outcome", "note"):
            rows.add_column(column, overflow="fold")
        for r in done.results:
            rows.add_row(escape(f"{r.name} <{r.email}>"), escape(r.user), r.outcome, escape(r.error or ""))
        out.print(rows)
        out.print(f"Installed for {done.count('installed')}, already installed for {done.count('already')}, "
                  f"failed for {done.count('failed')}" + (f", not tried for {done.count('not tried')}"
                                                          if done.count("not tried") else "") + ".")
    if mismatch:
        click.echo(f"chaser: note: {CLIENT_ID_ENV} is {graph_app}, not the bot's app id {app_id}: with "
                   "TeamsAppInstallation.ReadWriteSelfForUser.All an app can only install itself, so Graph "
                   "refuses unless the manifest's webApplicationInfo names that app registration", err=True)
    if done.failed:
        click.echo(f"chaser: the app could not be installed for {len(done.failed)} person(s): "
                   + "; ".join(f"{r.email}: {r.error or r.outcome}" for r in done.failed[:3])
                   + ("; …" if len(done.failed) > 3 else ""), err=True)
        sys.exit(1)


COMMANDS = (teams,)
