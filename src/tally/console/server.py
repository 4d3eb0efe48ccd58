"""The console's HTTP server: stdlib http.server in threads beside the gRPC server, bounded in connections,
request size and time. GET (and HEAD) read pages; POST only signs in and out."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import uuid
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from urllib.parse import parse_qs, unquote, urlsplit

import orjson

from tally.config import ConfigError
from tally.console import auth, routes
from tally.console.errors import http_status
from tally.console.html import Html, el, join
from tally.console.layout import document
from tally.console.login import login_page, safe_next
from tally.console.request import Page, Request, Response
from tally.domain.errors import ErrorKind, LedgerError
from tally.service.container import Services

log = logging.getLogger(__name__)
CONNECTIONS_MAX = 32
SOCKET_TIMEOUT_S = 15
URL_LENGTH_MAX = 2048
LOGIN_BODY_BYTES_MAX = 4096
QUERY_PARAMETERS_MAX = 16
STATIC_FILES = {"/static/console.css": ("console.css", "text/css; charset=utf-8"),
                "/static/events.js": ("events.js", "text/javascript; charset=utf-8")}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; "
                               "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",  # (no-referrer would make the sign-in form send `Origin: null`)
    "Cache-Control": "no-store",
}


class ConsoleServer:
    """Listens on `address` (host:port) and serves until `close`."""

    def __init__(self, services: Services, address: str, loop: asyncio.AbstractEventLoop) -> None:
        host, _, port = address.rpartition(":")
        handler = type("Handler", (_Handler,), {"services": services, "refusals": auth.RefusalLog(services, loop)})
        try:
            self.httpd = _BoundedServer((host.strip("[]") or "0.0.0.0", int(port)), handler)
        except OSError as exc:
            raise ConfigError(f"TALLY_CONSOLE_ADDRESS={address!r}: cannot listen ({exc.strerror})") from exc
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="tally-console", daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


class _BoundedServer(ThreadingHTTPServer):
    """A thread per connection, at most CONNECTIONS_MAX at once; one more is answered 503 and closed."""

    daemon_threads = True
    request_queue_size = CONNECTIONS_MAX

    def __init__(self, address, handler) -> None:
        self.slots = threading.BoundedSemaphore(CONNECTIONS_MAX)
        super().__init__(address, handler)

    def process_request(self, request, client_address) -> None:
        if not self.slots.acquire(blocking=False):
            with contextlib.suppress(OSError):
                request.sendall(b"HTTP/1.0 503 Service Unavailable\r\nContent-Length: 0\r\nRetry-After: 1\r\n\r\n")
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()


class _Handler(BaseHTTPRequestHandler):
    services: Services
    refusals: auth.RefusalLog
    timeout = SOCKET_TIMEOUT_S
    server_version = "tally-console"
    sys_version = ""

    def do_GET(self) -> None:  # noqa: N802 - the http.server naming
        self._send(self._get())

    def do_HEAD(self) -> None:  # noqa: N802
        self._send(self._get(), body=False)

    def do_POST(self) -> None:  # noqa: N802
        path = urlsplit(self.path).path
        origin = self.headers.get("Origin")
        if origin and urlsplit(origin).netloc != self.headers.get("Host", ""):
            # Another site's form would sign the browser in with the other site's key, or out.
            self._send(_plain(HTTPStatus.FORBIDDEN, "sign in from the console's own page"))
        elif path == "/logout":
            self._send(_redirect("/login", auth.logout_cookie()))
        elif path == "/login":
            self._send(self._login())
        else:
            self._send(_plain(HTTPStatus.METHOD_NOT_ALLOWED, "the console only reads", {"Allow": "GET, HEAD"}))

    def _get(self) -> Response:
        if len(self.path) > URL_LENGTH_MAX:
            return _plain(HTTPStatus.REQUEST_URI_TOO_LONG, "the address is too long")
        parts = urlsplit(self.path)
        path = unquote(parts.path)
        if path in STATIC_FILES:
            return _static(*STATIC_FILES[path])
        if path == "/favicon.ico":
            return Response(HTTPStatus.NO_CONTENT, "image/x-icon", b"", {"Cache-Control": "max-age=86400"})
        if path == "/login":
            return _html(HTTPStatus.OK, login_page(_next_of(parts.query)))
        found = routes.match(path)
        if found is None:
            return _html(HTTPStatus.NOT_FOUND, document("Not found", el("p", "No such page."), None))
        try:
            query = parse_qs(parts.query, max_num_fields=QUERY_PARAMETERS_MAX)
        except ValueError:
            return _plain(HTTPStatus.BAD_REQUEST, f"at most {QUERY_PARAMETERS_MAX} query parameters")
        return self._view(found[0], found[1], path, {k: v[0] for k, v in query.items()}, parts)

    def _view(self, route: routes.Route, args: tuple[str, ...], path: str, query: dict[str, str], parts) -> Response:
        authorization = auth.credential(self.headers)
        principal = None
        try:
            principal = auth.authenticate(self.services, authorization)
            auth.authorize(principal, route.method)
            answer = route.view(Request(path, query, principal, self.services), *args)
        except LedgerError as error:
            return self._refused(route, path, parts, authorization, principal, error)
        except Exception:  # noqa: BLE001 - logged with an id the page shows; never a traceback to the browser
            error_id = uuid.uuid4().hex[:12]
            log.exception("console %s failed (error_id=%s)", path, error_id)
            return self._error(path, principal, LedgerError(ErrorKind.INTERNAL, "INTERNAL_ERROR",
                                                            f"internal error (error_id {error_id})"))
        if isinstance(answer, Response):
            return answer
        return _html(HTTPStatus.OK, document(answer.title, answer.body, principal,
                                             scripts=route.scripts))

    def _refused(self, route, path, parts, authorization, principal, error: LedgerError) -> Response:
        if error.kind in (ErrorKind.UNAUTHENTICATED, ErrorKind.PERMISSION_DENIED) and \
                error.reason != "CREDENTIALS_MISSING":
            self.refusals.refused(route.method, principal, authorization, error, self.client_address[0], path)
        if error.kind is ErrorKind.UNAUTHENTICATED and not path.endswith(".json"):
            target = parts.path + (f"?{parts.query}" if parts.query else "")  # as sent: still percent-encoded
            message = None if error.reason == "CREDENTIALS_MISSING" else f"{error.reason}: {error.message}"
            return _html(HTTPStatus.UNAUTHORIZED, login_page(safe_next(target), message),
                         {"WWW-Authenticate": 'Bearer realm="tally"'})
        return self._error(path, principal, error)

    def _error(self, path: str, principal, error: LedgerError) -> Response:
        status = http_status(error.kind)
        if path.endswith(".json"):
            return Response(status, "application/json", orjson.dumps({"reason": error.reason,
                                                                      "message": error.message}))
        body = join([el("p", el("strong", error.reason), ": ", error.message, class_="error"),
                     el("p", "Go back, or start from ", el("a", "the accounts", href="/"), ".")])
        return _html(status, document(HTTPStatus(status).phrase, body, principal))

    def _login(self) -> Response:
        length = self.headers.get("Content-Length", "")
        if not length.isdigit() or int(length) > LOGIN_BODY_BYTES_MAX:
            return _plain(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"send at most {LOGIN_BODY_BYTES_MAX} bytes")
        form = parse_qs(self.rfile.read(int(length)).decode("utf-8", "replace"), max_num_fields=4)
        key, next_path = form.get("key", [""])[0].strip(), safe_next(form.get("next", ["/"])[0])
        try:
            principal = auth.authenticate(self.services, f"Bearer {key}")
        except LedgerError as error:
            return _html(HTTPStatus.UNAUTHORIZED, login_page(next_path, f"{error.reason}: {error.message}"))
        log.info("console: %s of tenant %s signed in from %s", principal.actor, principal.tenant_id,
                 self.client_address[0])
        return _redirect(next_path, auth.login_cookie(key))

    def _send(self, response: Response, body: bool = True) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in {**SECURITY_HEADERS, **response.headers}.items():
            self.send_header(name, value)
        self.end_headers()
        if body:
            self.wfile.write(response.body)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the http.server signature
        log.debug("console %s %s", self.address_string(), format % args)


def _next_of(query: str) -> str:
    try:
        return safe_next(parse_qs(query, max_num_fields=QUERY_PARAMETERS_MAX).get("next", ["/"])[0])
    except ValueError:
        return "/"


def _html(status: int, page: Html, headers: dict[str, str] | None = None) -> Response:
    return Response(int(status), "text/html; charset=utf-8", page.encode(), headers or {})


def _plain(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response(int(status), "text/plain; charset=utf-8", message.encode(), headers or {})


def _redirect(location: str, cookie: str) -> Response:
    return Response(HTTPStatus.SEE_OTHER, "text/plain; charset=utf-8", b"", {"Location": location,
                                                                           "Set-Cookie": cookie})


def _static(name: str, content_type: str) -> Response:
    body = resources.files("tally.console").joinpath("static", name).read_bytes()
    return Response(HTTPStatus.OK, content_type, body, {"Cache-Control": "max-age=300"})


__all__ = ["ConsoleServer", "Page"]
