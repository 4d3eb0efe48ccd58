"""List responses bounded by bytes as well as by items: a page of 500 large vouchers was 7 MB, past what a
gRPC client accepts by default (4 MiB). A page stops before the item that would take its encoded items past
the bound (it always holds one) and its token resumes right after the last item it holds."""

from __future__ import annotations

from collections.abc import Callable

from google.protobuf.message import Message

from tally.service.queries import Page

FIELD_OVERHEAD_BYTES_MAX = 6  # a repeated field's tag (1 byte) and length (a varint of up to 5)


def page_out(page: Page, convert: Callable[[object], Message], bytes_max: int) -> tuple[list[Message], str]:
    """The page's items as messages, within `bytes_max`, and the token of the page that follows."""
    messages: list[Message] = []
    size = 0
    for item in page.items:
        message = convert(item)
        size += message.ByteSize() + FIELD_OVERHEAD_BYTES_MAX
        if messages and size > bytes_max:
            return messages, page.resume_after(page.items[len(messages) - 1])
        messages.append(message)
    return messages, page.next_page_token
