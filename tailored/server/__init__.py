"""`serve`: runs behind an OpenAI-compatible HTTP API (FastAPI + uvicorn), one base and many adapters."""

from __future__ import annotations

import os
from dataclasses import replace

from tailored.config import ServerConfig
from tailored.errors import TailoredError


def build(runs: list[str] | None = None, cfg: ServerConfig | None = None):
    """The FastAPI app and its model pool, without starting a server (tests and embedding use this)."""
    from tailored.server.app import create_app
    from tailored.server.pool import Pool

    cfg = cfg or ServerConfig()
    if cfg.api_key is None and os.environ.get("TAILORED_API_KEY"):
        cfg = replace(cfg, api_key=os.environ["TAILORED_API_KEY"])  # a copy: the caller's config is theirs
    pool = Pool(cfg, runs)
    app = create_app(pool, cfg)
    if cfg.jobs:  # the queue persists in the runs folder: jobs a killed server left running resume here
        from tailored.fine_tuning.runner import Runner

        app.state.runner = Runner(cfg.runs_dir, cfg.concurrent_jobs, threads=cfg.job_threads).start()
    return app, pool


def serve(runs: list[str] | None = None, cfg: ServerConfig | None = None) -> None:
    """Serve `runs` (names or folders under cfg.runs_dir) until interrupted."""
    import uvicorn

    cfg = cfg or ServerConfig()
    key = cfg.api_key or os.environ.get("TAILORED_API_KEY")
    if cfg.host not in ("127.0.0.1", "localhost", "::1") and not key:
        if not cfg.allow_unauthenticated_network:
            raise TailoredError(f"refusing to listen on {cfg.host} without an API key: anyone who can reach it could "
                                "use your models, read uploaded files and start training. Set TAILORED_API_KEY or "
                                "--api-key, or pass --allow-unauthenticated-network to accept that risk")
        print(f"warning: listening on {cfg.host} with no API key (--allow-unauthenticated-network): anyone who can reach it "
              "can use it")
    app, pool = build(runs, cfg)
    print(f"serving {', '.join(pool.names())} on http://{cfg.host}:{cfg.port}/v1")
    try:
        uvicorn.run(app, host=cfg.host, port=cfg.port, log_level="warning")
    finally:
        if getattr(app.state, "runner", None):
            app.state.runner.stop()
