"""The sign-in page: an API key (or token) in, a cookie out."""

from __future__ import annotations

from tally.console.html import Html, el, join, void
from tally.console.layout import document


def login_page(next_path: str, message: str | None = None) -> Html:
    form = el("form",
              el("label", "API key or token", void("input", type="password", name="key", autocomplete="off",
                                                     required=True, autofocus=True, maxlength=4000)),
              void("input", type="hidden", name="next", value=next_path),
              el("button", "Sign in", type="submit"), method="post", action="/login", class_="login")
    return document("Sign in", join([
        el("p", message, class_="error") if message else None, form,
        el("p", "The console reads with the same keys and roles as the gRPC API: it shows what the key may read "
                "(`tally keys create --role reader` makes a key for it).", class_="hint")]), None)


def safe_next(path: str) -> str:
    """Where to go after signing in: a path on this server only, of visible ASCII (it becomes a Location
    header: a line break in it would add headers of the sender's choosing)."""
    if not path.startswith("/") or path.startswith("//") or "\\" in path or len(path) > 1024 or \
            not all("!" <= c <= "~" for c in path):
        return "/"
    return path
