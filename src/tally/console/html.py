"""HTML built from Python values, escaped by default: any str given to `el` is text, and only `Html` (made by
`el` or `raw` here) passes through as markup."""

from __future__ import annotations

from collections.abc import Iterable
from html import escape
from urllib.parse import urlencode


class Html(str):
    """Markup that is already safe to emit."""




def text(value: object) -> Html:
    return value if isinstance(value, Html) else Html(escape(str(value), quote=True))


def join(children: Iterable) -> Html:
    parts: list[str] = []
    for child in children:
        if child is None or child is False:
            continue
        if isinstance(child, str | int):
            parts.append(text(child))
        else:
            parts.append(join(child))
    return Html("".join(parts))


def el(tag: str, *children, **attrs) -> Html:
    """<tag attrs>children</tag>; `class_` is `class`, `data_x` is `data-x`, None or False attrs are left out."""
    rendered = "".join(f' {_name(k)}="{text(v)}"' if v is not True else f" {_name(k)}"
                       for k, v in attrs.items() if v is not None and v is not False)
    return Html(f"<{tag}{rendered}>{join(children)}</{tag}>")


def void(tag: str, **attrs) -> Html:
    rendered = "".join(f' {_name(k)}="{text(v)}"' if v is not True else f" {_name(k)}"
                       for k, v in attrs.items() if v is not None and v is not False)
    return Html(f"<{tag}{rendered}>")


def link(href: str, *children, **attrs) -> Html:
    return el("a", *children, href=href, **attrs)


def href(path: str, **query: object) -> str:
    """A path with its query string; empty values are left out."""
    kept = {k: v for k, v in query.items() if v not in (None, "")}
    return f"{path}?{urlencode(kept)}" if kept else path


def table(headers: Iterable[str], rows: Iterable[Iterable], **attrs) -> Html:
    return el("table", el("thead", el("tr", [el("th", h) for h in headers])),
              el("tbody", [el("tr", [el("td", cell) for cell in row]) for row in rows]), **attrs)


def _name(key: str) -> str:
    return key.rstrip("_").replace("_", "-")
