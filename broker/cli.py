"""The `tpv-broker` command: serve the API, rank one request offline exactly as the API would,
simulate, evaluate the success model, or report on the decision log."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from pydantic import ValidationError

from broker.config import CONFIG_ENV, ConfigError, Settings, load_settings


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(args.config)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from broker.app import configure_logging, create_app

    settings = _settings(args)
    server = settings.server
    configure_logging(settings)
    options = {
        "host": args.host or server.host,
        "port": args.port or server.port,
        "log_level": server.log_level,
        "access_log": args.access_log,
        "limit_concurrency": server.limit_concurrency,
        "timeout_keep_alive": server.timeout_keep_alive_s,
        "backlog": server.backlog,
        "root_path": server.root_path,
    }
    if server.workers == 1:
        uvicorn.run(create_app(settings), **options)
        return 0
    # Several processes: each worker imports broker.asgi, which reads the same file and the
    # same TPV_BROKER_* overrides from the environment it inherits.
    os.environ[CONFIG_ENV] = str(settings.source_file)
    uvicorn.run("broker.asgi:app", workers=server.workers, **options)
    return 0


def cmd_rank(args: argparse.Namespace) -> int:
    from broker.app import build_cache
    from broker.ranking.context import RankContext
    from broker.ranking.models import RankRequest
    from broker.ranking.rank import rank

    settings = _settings(args)
    try:
        request = RankRequest.model_validate_json(Path(args.request).read_bytes())
    except OSError as exc:
        print(f"tpv-broker: cannot read {args.request}: {exc.strerror}", file=sys.stderr)
        return 2
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()
        )
        print(f"tpv-broker: invalid request {args.request}: {problems}", file=sys.stderr)
        return 2
    cache = build_cache(settings)
    if not cache.refresh():
        print(f"tpv-broker: warning: {cache.status.last_error}", file=sys.stderr)
    ctx = RankContext(settings, cache.current, cache.status)
    response = rank(ctx, request.to_query(), explain=args.explain)
    print(response.to_json(indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    config_help = "YAML config (default: $TPV_BROKER_CONFIG, else the embedded demo network)"
    parser = argparse.ArgumentParser(prog="tpv-broker", description=__doc__)
    parser.add_argument("--config", help=config_help)
    # --config may also follow the subcommand: `tpv-broker rank REQ.json --config FILE`.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", default=argparse.SUPPRESS, help=config_help)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", parents=[common], help="run the HTTP API (uvicorn)")
    serve.add_argument("--host", help="override server.host")
    serve.add_argument("--port", type=int, help="override server.port")
    serve.add_argument("--access-log", action="store_true", help="log every HTTP request")
    serve.set_defaults(func=cmd_serve)
    rank = sub.add_parser(
        "rank", parents=[common], help="rank one request JSON offline and print the API's answer"
    )
    rank.add_argument("request", help="a /process_data request body (JSON file)")
    rank.add_argument("--explain", action="store_true", help="include the explanation")
    rank.set_defaults(func=cmd_rank)
    from broker.sim.cli import add_parser as add_simulate_parser

    add_simulate_parser(sub)  # `simulate`: implemented in broker/sim/cli.py
    from broker.success.cli import add_parser as add_eval_success_parser

    add_eval_success_parser(sub)  # `eval-success`, `compat-experiment`: broker/success/
    from broker.report.cli import add_parser as add_report_parser

    add_report_parser(sub)  # `report`: implemented in broker/report/
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"tpv-broker: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
