"""`edgeskd agent serve`: the latency service that runs on a device and backs the `remote://host:port` target."""

from __future__ import annotations

import argparse
import os

from edgeskd.cli._common import print_json


def register(sub, name: str, help_text: str) -> argparse.ArgumentParser:
    parser = sub.add_parser(name, help=help_text, description=help_text)
    actions = parser.add_subparsers(dest="agent_command", metavar="ACTION", title="actions")
    serve = actions.add_parser(
        "serve", help="serve latency measurements over HTTP until interrupted",
        description="Measure uploaded ONNX models on this device, one at a time, for `--target remote://HOST:PORT`. "
                    "The token is best passed in the EDGESKD_AGENT_TOKEN environment variable (not visible in ps).")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 for all)")
    serve.add_argument("--port", type=int, default=8765, help="TCP port (default 8765; 0 picks a free one)")
    serve.add_argument("--token", default=None, help="shared secret (default: $EDGESKD_AGENT_TOKEN)")
    serve.add_argument("--max-upload-mb", type=float, default=256, help="largest accepted ONNX upload (default 256)")
    serve.add_argument("--max-seconds", type=float, default=300, help="time limit of one measurement (default 300)")
    serve.add_argument("--max-queue", type=int, default=8, help="waiting measurements before 503 (default 8)")
    serve.add_argument("--max-batch", type=int, default=256, help="largest batch a request may ask for (default 256)")
    serve.add_argument("--max-connections", type=int, default=32,
                       help="requests served at once; more are answered 503 at once (default 32)")
    serve.add_argument("--json", action="store_true", help="print the listening address as one JSON object")
    serve.set_defaults(func=run)
    parser.set_defaults(func=lambda args: parser.print_help() or 2)
    return parser


def run(args: argparse.Namespace) -> int:
    from edgeskd.errors import LatencyError
    from edgeskd.latency.agent import AgentConfig, LatencyAgent

    token = args.token or os.environ.get("EDGESKD_AGENT_TOKEN")
    if not token:
        raise LatencyError("no token: pass --token or set EDGESKD_AGENT_TOKEN")
    from edgeskd._limits import check_range

    upload_mb = check_range(args.max_upload_mb, "--max-upload-mb", low=0, high=1 << 20, error=LatencyError,
                            low_open=True)
    config = AgentConfig(token=token, max_upload_bytes=int(upload_mb * (1 << 20)),
                         max_measure_s=args.max_seconds, max_queue=args.max_queue, max_batch=args.max_batch,
                         max_connections=args.max_connections)
    import signal

    def _stop(signum, frame):  # SIGTERM (systemd, docker stop, kill): leave like Ctrl-C, through agent.close()
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    try:
        agent = LatencyAgent(config, host=args.host, port=args.port)
    except OSError as exc:
        raise LatencyError(f"cannot listen on {args.host}:{args.port}: {exc}") from exc
    try:
        _serve(agent, args)
    except KeyboardInterrupt:
        pass  # Ctrl-C or SIGTERM, wherever it lands (also between the url line and serving): a normal stop
    finally:
        agent.close()  # also on SIGTERM and on a failed print: no work folder is left behind
    return 0


def _serve(agent, args: argparse.Namespace) -> None:
    config = agent.config
    if args.json:
        print_json({"url": agent.url, "max_upload_bytes": config.max_upload_bytes, "max_measure_s": config.max_measure_s})
    else:
        print(f"edgeskd agent listening on {agent.url} (use --target remote://HOST:{agent.server.server_address[1]})",
              flush=True)
    import sys

    sys.stdout.flush()
    agent.serve_forever()
