"""The portal's web app: one page per customer, the same figures as JSON, behind signed links.

    GET /?customer=…&expires=…&signature=…               the customer's month (HTML)
    GET /api/v1/month?customer=…&expires=…&signature=…   the same figures (JSON)
    GET /static/…                                        the stylesheet and the icon
    GET /healthz                                         liveness

The customer comes only from a verified link (`links.verify`); anything else is 403 and shows no
figures. Every page is rendered by Jinja2 with autoescaping (customer ids and metric names are
user data) and carries a Content-Security-Policy that allows nothing but this server's own
stylesheet: no script runs, nothing is fetched from elsewhere, and no Referer carries a link away.
The access log records method, path and status, never a query string (it holds the signature).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jinja2
import sqlalchemy as sa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from usage_billing import contracts, periods, pricing
from usage_billing.config import ConfigurationError
from usage_billing.portal import links, page
from usage_billing.portal.figures import customer_month

log = logging.getLogger("usage_billing.portal")
HERE = Path(__file__).parent
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; frame-ancestors 'none'; "
        "base-uri 'none'; form-action 'none'"
    ),
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
    "cache-control": "no-store",
}


class AccessLog:
    """Logs each request's method, path (no query string: it holds the signature), status and
    time, and adds the security headers to every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.monotonic(), [500]

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                headers = message.setdefault("headers", [])
                present = {name.lower() for name, _ in headers}
                headers.extend(
                    (name.encode(), value.encode())
                    for name, value in SECURITY_HEADERS.items()
                    if name.encode() not in present
                )
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            elapsed = (time.monotonic() - started) * 1000
            log.info("%s %s %d %.0f ms", scope["method"], scope["path"], status[0], elapsed)


def create_app(
    engine: sa.Engine, secret: bytes, now: Callable[[], dt.datetime] = periods.now
) -> Starlette:
    """The app on `engine`, verifying links with `secret`, as of `now()` (the pipeline clock)."""
    templates = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )

    def render(name: str, status: int, **context: Any) -> HTMLResponse:
        return HTMLResponse(templates.get_template(name).render(**context), status_code=status)

    def grant(request: Request) -> links.Grant | None:
        try:
            return links.verify(secret, request.query_params.multi_items(), now())
        except links.Refused as refused:
            log.warning("refused a link on %s: %s", request.url.path, refused)
            return None

    def month_of(found: links.Grant) -> Any:
        card = pricing.load_rate_card()  # read at every request, as every command reads it
        commits = contracts.load_contracts()
        return customer_month(engine, card, commits, found.customer_id, now())

    def unavailable(error: ConfigurationError) -> str:
        log.error("cannot show a page: %s", error)
        return "The figures are unavailable right now. Please try again later."

    def month_page(request: Request) -> Response:
        found = grant(request)
        if found is None:
            return render("forbidden.html", 403)
        try:
            figures = month_of(found)
        except ConfigurationError as error:
            return render("forbidden.html", 503, message=unavailable(error))
        return render("month.html", 200, view=page.view(figures, found))

    def month_json(request: Request) -> Response:
        found = grant(request)
        if found is None:
            return JSONResponse({"error": "forbidden"}, status_code=403)
        try:
            figures = month_of(found)
        except ConfigurationError as error:
            return JSONResponse({"error": unavailable(error)}, status_code=503)
        document = {**figures.to_json(), "link_expires_at": found.expires.isoformat()}
        # For embedding: any page holding the link may read it (no cookies are involved).
        return JSONResponse(document, headers={"access-control-allow-origin": "*"})

    def health(request: Request) -> Response:
        return PlainTextResponse("ok")

    app = Starlette(
        routes=[
            Route("/", month_page),
            Route("/api/v1/month", month_json),
            Route("/healthz", health),
            Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        ]
    )
    app.router.redirect_slashes = False  # exact paths: no redirect that repeats a link
    app.add_middleware(AccessLog)
    return app
