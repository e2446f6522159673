"""`serve`: runs behind an OpenAI-compatible HTTP API (FastAPI + uvicorn), one base and many adapters."""

from __future__ import annotations

import os
from dataclasses import replace

from tailored.config import ServerConfig


def build(runs: list[str] | None = None, cfg: ServerConfig | None = None):
    """The FastAPI app and its model pool, without starting a server (tests and embedding use this)."""
    from tailored.server.app import create_app
    from tailored.server.pool import Pool

    cfg = cfg or ServerConfig()
    if cfg.api_key is None and os.environ.get("TAILORED_API_KEY"):
        cfg = replace(cfg, api_key=os.environ["TAILORED_API_KEY"])  # a copy: the caller's config is theirs
    pool = Pool(cfg, runs)
    return create_app(pool, cfg), pool


def serve(runs: list[str] | None = None, cfg: ServerConfig | None = None) -> None:
    """Serve `runs` (names or folders under cfg.runs_dir) until interrupted."""
    import uvicorn

    cfg = cfg or ServerConfig()
    app, pool = build(runs, cfg)
    if cfg.host not in ("127.0.0.1", "localhost", "::1") and not cfg.api_key:
        print(f"warning: listening on {cfg.host} with no API key — anyone who can reach it can use it")
    print(f"serving {', '.join(pool.names())} on http://{cfg.host}:{cfg.port}/v1")
    uvicorn.run(app, host=cfg.host, port=cfg.port, log_level="warning")
