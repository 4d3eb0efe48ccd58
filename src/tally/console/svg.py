"""A voucher drawn as money moving between accounts, read the way ledgers of transfers read (a transfer debits
the account money comes from and credits the one it goes to): the debited accounts on the left, the credited
ones on the right, the voucher in the middle, and one path per line whose width grows with its amount. Drawn
on the server as inline SVG; no script."""

from __future__ import annotations

from collections.abc import Callable

from tally.console.html import Html, el, join
from tally.domain.accounts import Side
from tally.domain.vouchers import PostedLine, Voucher

WIDTH = 760
ROW_HEIGHT = 44
BOX_WIDTH = 220
BOX_HEIGHT = 32
HUB_X = WIDTH // 2
STROKE_MIN = 2
STROKE_MAX = 14
LABEL_LENGTH_MAX = 26


def voucher_svg(voucher: Voucher, show: Callable[[int, str], str]) -> Html:
    """`show(amount, currency)` writes an amount for people."""
    debits = [ln for ln in voucher.lines if ln.side is Side.DEBIT]
    credits = [ln for ln in voucher.lines if ln.side is Side.CREDIT]
    rows = max(len(credits), len(debits), 1)
    height = rows * ROW_HEIGHT + 24
    hub_y = height // 2
    largest = max((ln.amount for ln in voucher.lines), default=1)
    parts = [_arrow_marker(),
             el("rect", x=HUB_X - 8, y=hub_y - 30, width=16, height=60, rx=4, class_="hub")]
    for column, lines in ((0, debits), (1, credits)):
        top = (height - len(lines) * ROW_HEIGHT) // 2
        for i, line in enumerate(lines):
            y = top + i * ROW_HEIGHT + ROW_HEIGHT // 2
            parts.append(_line(line, column, y, hub_y, largest, show))
    return el("svg", join(parts), xmlns="http://www.w3.org/2000/svg", viewBox=f"0 0 {WIDTH} {height}",
              width=WIDTH, height=height, class_="voucher-flow", role="img",
              aria_label=f"voucher {voucher.id}: {len(debits)} debit and {len(credits)} credit lines")


def _line(line: PostedLine, column: int, y: int, hub_y: int, largest: int, show) -> Html:
    box_x = 8 if column == 0 else WIDTH - BOX_WIDTH - 8
    # Integer widths: the largest line gets STROKE_MAX, the others in proportion, none thinner than STROKE_MIN.
    stroke = max(STROKE_MIN, line.amount * STROKE_MAX // largest)
    if column == 0:
        start, end = (box_x + BOX_WIDTH, y), (HUB_X - 8, hub_y)
    else:
        start, end = (HUB_X + 8, hub_y), (box_x - 6, y)
    middle = (start[0] + end[0]) // 2
    path = f"M{start[0]},{start[1]} C{middle},{start[1]} {middle},{end[1]} {end[0]},{end[1]}"
    code = line.account_code or line.account_id[-8:]
    label = code if len(code) <= LABEL_LENGTH_MAX else code[:LABEL_LENGTH_MAX - 1] + "…"
    side = "debit" if column == 0 else "credit"
    return el("g", el("title", f"line {line.line_no}: {side} {code} {show(line.amount, line.currency)}"),
              el("path", d=path, stroke_width=stroke, class_=f"flow {side}", marker_end="url(#arrow)",
                 data_line=line.line_no),
              el("a", el("rect", x=box_x, y=y - BOX_HEIGHT // 2, width=BOX_WIDTH, height=BOX_HEIGHT, rx=6,
                         class_=f"box {side}"),
                 el("text", label, x=box_x + 10, y=y - 2, class_="code"),
                 el("text", show(line.amount, line.currency), x=box_x + 10, y=y + 12, class_="sum"),
                 href=f"/accounts/{line.account_id}"),
              class_="line")


def _arrow_marker() -> Html:
    return el("defs", el("marker", el("path", d="M0,0 L8,4 L0,8 z", class_="arrowhead"), id="arrow",
                         viewBox="0 0 8 8", refX=7, refY=4, markerWidth=10, markerHeight=10, orient="auto",
                         markerUnits="userSpaceOnUse"))
