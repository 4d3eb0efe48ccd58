"""`tally controls`: an account's spending controls, team budget and sweeps (ControlService).

    tally controls set ACCOUNT [--per-voucher-max N] [--velocity WINDOW=LIMIT]... [--sliding WINDOW=LIMIT]...
                       [--team WINDOW=LIMIT]... [--team-sliding WINDOW=LIMIT]... [--flow TYPE]...
                       [--counterparty CODE_OR_PATTERN]... [--top-up THRESHOLD:TARGET:FUNDING]
                       [--excess CEILING:TARGET:DESTINATION]
    tally controls show ACCOUNT
    tally controls clear ACCOUNT
    tally fx FROM TO AMOUNT --from-currency USD --to-currency EUR --rate 9213/10000

`set` replaces every control of the account with the ones given; WINDOW is hour, day or month.
"""

from __future__ import annotations

import argparse

from tally.cli import common
from tally.cli import format as fmt
from tally.cli.ledger import post
from tally.v1 import accounting_service_pb2 as post_pb
from tally.v1 import control_service_pb2 as pb
from tally.v1 import control_service_pb2_grpc as pb_grpc
from tally.v1 import flows_pb2

WINDOWS = {"hour": pb.CONTROL_WINDOW_HOUR, "day": pb.CONTROL_WINDOW_DAY, "month": pb.CONTROL_WINDOW_MONTH}
WINDOW_NAMES = {v: k for k, v in WINDOWS.items()}



def parse_limit(text: str) -> tuple[int, int]:
    """`day=1000` -> (window, limit)."""
    window, sep, limit = text.partition("=")
    if not sep or window not in WINDOWS:
        raise ValueError(f"expected WINDOW=LIMIT with WINDOW one of {', '.join(WINDOWS)}")
    return WINDOWS[window], fmt.parse_amount(limit)


def parse_sweep(text: str) -> tuple[int, int, str]:
    """`100:500:treasury` -> (trigger, target, account)."""
    parts = text.split(":", 2)
    if len(parts) != 3 or not parts[2]:
        raise ValueError("expected TRIGGER:TARGET:ACCOUNT (amounts in atomic units)")
    return fmt.parse_amount(parts[0], minimum=0), fmt.parse_amount(parts[1], minimum=0), parts[2]


def parse_rate(text: str) -> tuple[int, int]:
    """`9213/10000` -> (9213, 10000): target atomic units per source atomic unit."""
    numerator, sep, denominator = text.partition("/")
    if not sep:
        raise ValueError("expected NUMERATOR/DENOMINATOR, e.g. 9213/10000")
    return fmt.parse_amount(numerator), fmt.parse_amount(denominator)


def _velocities(args: argparse.Namespace, calendar: str, sliding: str) -> list[pb.VelocityLimit]:
    return ([pb.VelocityLimit(window=w, limit=n) for w, n in getattr(args, calendar) or ()]
            + [pb.VelocityLimit(window=w, limit=n, sliding=True) for w, n in getattr(args, sliding) or ()])


def controls_of(args: argparse.Namespace) -> pb.AccountControls:
    sweeps = [pb.Sweep(kind=kind, trigger=trigger, target=target, counter_account=fmt.account_ref(account))
              for kind, spec in ((pb.SWEEP_KIND_TOP_UP, args.top_up), (pb.SWEEP_KIND_EXCESS, args.excess)) if spec
              for trigger, target, account in [spec]]
    return pb.AccountControls(per_voucher_max=args.per_voucher_max or 0,
                              velocity=_velocities(args, "velocity", "sliding"),
                              allowed_flows=args.flow or [], allowed_counterparties=args.counterparty or [],
                              team_velocity=_velocities(args, "team", "team_sliding"), sweeps=sweeps)


def _limit_text(v: pb.VelocityLimit) -> str:
    return f"{'sliding' if v.sliding else 'calendar'} {WINDOW_NAMES.get(v.window, '?')}"


def _source_text(response) -> str:
    if response.source == pb.CONTROLS_SOURCE_API:
        return "api"
    if response.source == pb.CONTROLS_SOURCE_RULE_SET:
        return f"rule set (template {response.template_pattern})"
    return "none"


def controls_text(response) -> str:
    c = response.controls
    rows = [("account", response.account_id)]
    if "source" in response.DESCRIPTOR.fields_by_name:  # GetAccountControls says where they come from
        rows.append(("source", _source_text(response)))
    rows += [("per_voucher_max", c.per_voucher_max or "none"),
            ("allowed_flows", ", ".join(c.allowed_flows) or "any"),
            ("allowed_counterparties", ", ".join(c.allowed_counterparties) or "any")]
    rows += [(f"sweep {fmt.enum_label(pb.SweepKind, s.kind)}",
              f"at {s.trigger} to {s.target} with {s.counter_account.id or s.counter_account.code}")
             for s in c.sweeps]
    usage = [[("team " if u.team else "") + _limit_text(u.limit), u.limit.limit, u.spent,
              u.limit.limit - u.spent] for u in response.usage]
    table = fmt.format_table(["window", "limit", "spent", "left"], usage) if usage else "no velocity limits"
    return fmt.format_fields(rows) + "\n\n" + table


def _set(args: argparse.Namespace, controls: pb.AccountControls) -> int:
    request = pb.SetAccountControlsRequest(request_id=common.request_id(args), account=args.account,
                                           controls=controls)
    with common.stub(args, pb_grpc.ControlServiceStub) as stub:
        return common.emit(args, stub.SetAccountControls(request), controls_text)


def cmd_set(args: argparse.Namespace) -> int:
    return _set(args, controls_of(args))


def cmd_clear(args: argparse.Namespace) -> int:
    return _set(args, pb.AccountControls())


def cmd_show(args: argparse.Namespace) -> int:
    with common.stub(args, pb_grpc.ControlServiceStub) as stub:
        return common.emit(args, stub.GetAccountControls(pb.GetAccountControlsRequest(account=args.account)),
                         controls_text)


def cmd_fx(args: argparse.Namespace) -> int:
    numerator, denominator = args.rate
    flow = flows_pb2.FxFlow(amount=args.amount, from_currency=args.from_currency.upper(),
                            to_currency=args.to_currency.upper(), rate_numerator=numerator,
                            rate_denominator=denominator, memo=args.memo or "")
    getattr(flow, "from").CopyFrom(args.source)  # `from` is a Python keyword
    flow.to.CopyFrom(args.destination)
    return post(args, post_pb.PostRequest(request_id=common.request_id(args), memo=args.memo or "", fx=flow))


def add_fx_parser(commands, client: argparse.ArgumentParser) -> None:
    fx = commands.add_parser("fx", parents=[client], help="convert money between currencies at a given rate")
    common.account_arg(fx, "source", "FROM", "the account paying, in --from-currency")
    common.account_arg(fx, "destination", "TO", "the account receiving, in --to-currency")
    fx.add_argument("amount", type=common.arg(fmt.parse_amount), metavar="AMOUNT", help="atomic units of FROM")
    fx.add_argument("--from-currency", required=True)
    fx.add_argument("--to-currency", required=True)
    fx.add_argument("--rate", required=True, type=common.arg(parse_rate), metavar="N/D",
                    help="target atomic units per source atomic unit, as an integer fraction")
    fx.add_argument("--memo")
    common.request_id_option(fx)
    fx.set_defaults(func=cmd_fx)


def add_controls_parser(commands, client: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Registers `tally controls VERB` (and `tally fx`) on the `tally` command's subparsers."""
    add_fx_parser(commands, client)
    controls = commands.add_parser("controls", help="spending controls, team budgets and sweeps of an account")
    verbs = controls.add_subparsers(dest="verb", required=True, metavar="VERB")
    limit = common.arg(parse_limit)

    setting = verbs.add_parser("set", parents=[client], help="replace an account's controls with these")
    common.account_arg(setting)
    common.request_id_option(setting)
    setting.add_argument("--per-voucher-max", type=common.arg(fmt.parse_amount), metavar="N")
    for flag, dest, what in (("--velocity", "velocity", "calendar window (UTC)"),
                             ("--sliding", "sliding", "sliding window"),
                             ("--team", "team", "team budget over the children, calendar window"),
                             ("--team-sliding", "team_sliding", "team budget over the children, sliding window")):
        setting.add_argument(flag, dest=dest, type=limit, action="append", metavar="WINDOW=LIMIT",
                             help=f"spend limit per {what}; WINDOW is hour, day or month")
    setting.add_argument("--flow", action="append", metavar="TYPE", help="a flow type it may spend in")
    setting.add_argument("--counterparty", action="append", metavar="CODE", help="an account code or pattern "
                         "(* and ?) its spend may go to")
    setting.add_argument("--top-up", type=common.arg(parse_sweep), metavar="THRESHOLD:TARGET:FUNDING")
    setting.add_argument("--excess", type=common.arg(parse_sweep), metavar="CEILING:TARGET:DESTINATION")
    setting.set_defaults(func=cmd_set)

    clear = verbs.add_parser("clear", parents=[client], help="remove every control of an account")
    common.account_arg(clear)
    common.request_id_option(clear)
    clear.set_defaults(func=cmd_clear)

    show = verbs.add_parser("show", parents=[client], help="an account's controls and its spend per window")
    common.account_arg(show)
    show.set_defaults(func=cmd_show)
    return controls
