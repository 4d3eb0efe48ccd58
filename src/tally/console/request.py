"""What a view is given and what it answers."""

from __future__ import annotations

from dataclasses import dataclass, field

from tally.console.html import Html
from tally.domain.auth import Principal
from tally.service.container import Services

PAGE_SIZE_DEFAULT = 50
PAGE_SIZE_MAX = 200


@dataclass(frozen=True)
class Request:
    path: str
    query: dict[str, str]  # the first value of each parameter
    principal: Principal
    services: Services

    @property
    def tenant_id(self) -> str:
        return self.principal.tenant_id

    def arg(self, name: str, default: str = "") -> str:
        return self.query.get(name, default)

    def page_size(self) -> int:
        """The `size` parameter, within 1..PAGE_SIZE_MAX."""
        raw = self.arg("size")
        return min(int(raw), PAGE_SIZE_MAX) if raw.isdigit() and int(raw) > 0 else PAGE_SIZE_DEFAULT


@dataclass(frozen=True)
class Page:
    """An HTML page's title and body; the layout adds the rest."""

    title: str
    body: Html


@dataclass(frozen=True)
class Response:
    status: int
    content_type: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
