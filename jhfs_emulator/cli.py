"""The command line: `python -m jhfs_emulator` and `jhfs emulator` (via `main(argv)`).

The first stdout line is exactly `jhfs emulator listening on http://HOST:PORT`
(flushed, so scripts can wait for it); a token the emulator made up itself is
printed on the second line as `token: TOKEN`. SIGTERM and SIGINT stop it:
job processes are killed, a temporary data directory removed, exit status 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import secrets
import shutil
import signal
import sys
import tempfile
from pathlib import Path

from aiohttp import web

from jhfs_emulator.app import build_app
from jhfs_emulator.context import EmulatorContext
from jhfs_emulator.demo import seed_demo
from jhfs_emulator.store import JobStore

logger = logging.getLogger(__name__)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jhfs emulator", description="A local JuliaHub-compatible server."
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    parser.add_argument("--port", type=int, default=0, help="port (default 0: a free one)")
    parser.add_argument("--token", help="bearer token (default $JULIAHUB_TOKEN, else random)")
    parser.add_argument(
        "--data-dir", type=Path, help="scratch directory (default: a temporary one)"
    )
    parser.add_argument("--demo", action="store_true", help="seed sample jobs to explore")
    parser.add_argument("--kill-grace", type=float, default=5.0, help="seconds from TERM to KILL")
    parser.add_argument("--log-level", default="WARNING", help="logging level (default WARNING)")
    return parser


async def _serve(args: argparse.Namespace, token: str, data_dir: Path, made_token: bool) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    store = JobStore(data_dir, kill_grace=args.kill_grace)
    app = build_app(EmulatorContext(store, token))
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, args.host, args.port)
        await site.start()
        host, port = runner.addresses[0][:2]
        if args.demo:
            await seed_demo(store)
        shown = f"[{host}]" if ":" in host else host
        print(f"jhfs emulator listening on http://{shown}:{port}", flush=True)
        if made_token:
            print(f"token: {token}", flush=True)
        await stop.wait()
    finally:
        logger.info("shutting down")
        await store.runner.shutdown()
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    token = args.token or os.environ.get("JULIAHUB_TOKEN") or ""
    made_token = not token
    if made_token:
        token = secrets.token_urlsafe(24)
    temporary = args.data_dir is None
    data_dir = Path(tempfile.mkdtemp(prefix="jhfs-emulator-")) if temporary else args.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        asyncio.run(_serve(args, token, data_dir, made_token))
    except OSError as error:
        print(f"jhfs emulator: {error}", file=sys.stderr)
        return 1
    finally:
        if temporary:
            with contextlib.suppress(OSError):
                shutil.rmtree(data_dir)
    return 0
