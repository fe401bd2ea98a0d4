"""`python -m retention.ingest [--host H] [--port P]`: the ingest service under uvicorn."""

from __future__ import annotations

import argparse

import uvicorn

from retention.errors import RetentionError
from retention.ingest.app import create_app
from retention.logs import configure_logging
from retention.settings import get_settings


def main() -> None:
    settings = get_settings()
    parser = argparse.ArgumentParser(prog="python -m retention.ingest", description=__doc__)
    parser.add_argument("--host", default=settings.ingest_host)
    parser.add_argument("--port", type=int, default=settings.ingest_port)
    args = parser.parse_args()
    try:
        app = create_app(settings)
    except RetentionError as exc:  # e.g. a broken sources.yaml, named at file:line
        raise SystemExit(f"error: {exc}") from None
    configure_logging(settings.log_format)
    print(f"ingest service on http://{args.host}:{args.port} (OpenAPI at /docs)", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")


if __name__ == "__main__":
    main()
