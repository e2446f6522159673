"""OpenAI's files and fine-tuning jobs API over `tailored.fine_tuning`: the same client code, trained here.

Routes only translate: the store keeps files and jobs, the runner trains them in worker processes,
and every job is an ordinary run under the runs folder.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Literal

from fastapi import Depends, FastAPI, Query, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from tailored.config import ServerConfig, SettingsError
from tailored.fine_tuning import store
from tailored.fine_tuning.worker import model_name, train_config
from tailored.models.bases import NAMED_BASES
from tailored.server.errors import APIError

PURPOSES = ("fine-tune", "fine-tune-results")
HYPERPARAMETERS = {"supervised": {"n_epochs", "batch_size", "learning_rate_multiplier"},
                   "dpo": {"n_epochs", "batch_size", "learning_rate_multiplier", "beta"}}


class MethodSpec(BaseModel):
    type: Literal["supervised", "dpo"]
    supervised: dict | None = None
    dpo: dict | None = None


class JobRequest(BaseModel):
    model: str = Field(max_length=512)
    training_file: str = Field(max_length=128)
    validation_file: str | None = Field(None, max_length=128)
    hyperparameters: dict | None = None  # the older top-level form; `method` is the newer one
    method: MethodSpec | None = None
    suffix: str | None = Field(None, max_length=64, pattern=r"^[A-Za-z0-9_-]*$")
    seed: int | None = Field(None, ge=0, le=2**31 - 1)
    metadata: dict[str, str] | None = None
    integrations: list | None = None


class _TooLarge(Exception):
    pass


def _page(items: list[dict], after: str | None, limit: int) -> dict:
    if after:
        ids = [i["id"] for i in items]
        items = items[ids.index(after) + 1:] if after in ids else []
    return {"object": "list", "data": items[:limit], "has_more": len(items) > limit}


def add_routes(app: FastAPI, runs_dir: Path, cfg: ServerConfig, bases: list[str], require_key) -> None:
    """The routes, all behind the server's key; `bases` are the `model` names a job may start from."""
    keyed = [Depends(require_key)]

    class api:  # the app's own decorators, each with the key check (routes stay plain routes of the app)
        post = staticmethod(lambda path: app.post(path, dependencies=keyed))
        get = staticmethod(lambda path: app.get(path, dependencies=keyed))
        delete = staticmethod(lambda path: app.delete(path, dependencies=keyed))

    jobs = store.Jobs(runs_dir)

    def found_job(job_id: str) -> dict:
        job = jobs.get(job_id)
        if job is None:
            raise APIError(404, f"fine-tuning job '{job_id[:100]}' not found", code="not_found")
        return job

    def found_file(file_id: str) -> dict:
        meta = store.file_meta(runs_dir, file_id)
        if meta is None:
            raise APIError(404, f"file '{file_id[:100]}' not found", code="not_found")
        return meta

    # ---- files -------------------------------------------------------------------------------
    @api.post("/v1/files")
    async def upload(request: Request):
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > cfg.max_file_bytes:
            raise APIError(413, f"file upload is over this server's cap of {cfg.max_file_bytes} bytes",
                           code="request_too_large")
        received = 0

        async def counted():  # streamed: at most one chunk in memory, parts spill to disk
            nonlocal received
            async for chunk in request.stream():
                received += len(chunk)
                if received > cfg.max_file_bytes:
                    raise _TooLarge
                yield chunk

        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            raise APIError(400, "send the file as multipart/form-data with fields 'file' and 'purpose'")
        try:
            form = await MultiPartParser(request.headers, counted(), max_files=1, max_fields=4).parse()
        except _TooLarge:
            raise APIError(413, f"file upload is over this server's cap of {cfg.max_file_bytes} bytes",
                           code="request_too_large") from None
        except (MultiPartException, ValueError, KeyError) as e:
            raise APIError(400, f"unreadable multipart body: {str(e)[:200]}") from None
        try:
            upload_file, purpose = form.get("file"), form.get("purpose")
            if not isinstance(upload_file, UploadFile):
                raise APIError(400, "the 'file' field is missing", param="file")
            if purpose not in ("fine-tune",):
                raise APIError(400, "purpose must be 'fine-tune'", param="purpose")
            with tempfile.NamedTemporaryFile(dir=runs_dir, delete=False) as out:
                while chunk := await upload_file.read(1 << 20):
                    out.write(chunk)
            return store.save_file(runs_dir, Path(out.name), upload_file.filename or "upload.jsonl", purpose)
        finally:
            await form.close()

    @api.get("/v1/files")
    def list_files(purpose: str | None = Query(None, max_length=64), after: str | None = Query(None, max_length=128),
                   limit: int = Query(10000, ge=1, le=10000)):
        return _page(store.list_files(runs_dir, purpose), after, limit)

    @api.get("/v1/files/{file_id}")
    def get_file(file_id: str):
        return found_file(file_id)

    @api.delete("/v1/files/{file_id}")
    def delete_file(file_id: str):
        found_file(file_id)
        return {"id": file_id, "object": "file", "deleted": store.delete_file(runs_dir, file_id)}

    @api.get("/v1/files/{file_id}/content")
    def file_content(file_id: str):
        meta = found_file(file_id)
        return FileResponse(store.file_path(runs_dir, file_id), filename=meta["filename"])

    # ---- jobs --------------------------------------------------------------------------------
    @api.post("/v1/fine_tuning/jobs")
    def create_job(req: JobRequest):
        if req.model not in bases:
            raise APIError(400, f"model '{req.model[:100]}' is not a base this server trains; choose one of "
                                f"{', '.join(bases)}", param="model", code="model_not_available")
        for key in ("training_file", "validation_file"):
            if getattr(req, key) is not None:
                meta = store.file_meta(runs_dir, getattr(req, key))
                if meta is None or meta["purpose"] != "fine-tune":
                    raise APIError(400, f"{key}: no uploaded fine-tune file '{getattr(req, key)[:100]}'", param=key,
                                   code="invalid_file")
        kind = req.method.type if req.method else "supervised"
        given = (getattr(req.method, kind) or {}).get("hyperparameters", {}) if req.method else {}
        hyper = {**(req.hyperparameters or {}), **(given or {})}
        unknown = set(hyper) - HYPERPARAMETERS[kind]
        if unknown:
            raise APIError(400, f"hyperparameters: unknown for {kind}: {', '.join(sorted(unknown))} (known: "
                                f"{', '.join(sorted(HYPERPARAMETERS[kind]))})", param="hyperparameters")
        try:
            train_config(req.model, kind, hyper)
        except SettingsError as e:  # every setting is checked now, not when the job reaches the front
            given_text = ", ".join(f"{k}={v!r}" for k, v in hyper.items())
            raise APIError(400, f"hyperparameters ({given_text}): {e}", param="hyperparameters") from None
        job_id = jobs.create({"model": req.model, "training_file": req.training_file,
                              "validation_file": req.validation_file, "method": kind,
                              "hyperparameters": {k: hyper.get(k, "auto") for k in sorted(HYPERPARAMETERS[kind])},
                              "suffix": req.suffix or None, "seed": req.seed if req.seed is not None else 0,
                              "metadata": req.metadata})
        return store.job_object(jobs.get(job_id))

    @api.get("/v1/fine_tuning/jobs")
    def list_jobs(after: str | None = Query(None, max_length=128), limit: int = Query(20, ge=1, le=1000)):
        return _page([store.job_object(j) for j in jobs.all()], after, limit)

    @api.get("/v1/fine_tuning/jobs/{job_id}")
    def get_job(job_id: str):
        return store.job_object(found_job(job_id))

    def move(job_id: str, to: str, allowed: tuple[str, ...], message: str) -> dict:
        job = found_job(job_id)
        extra = {"finished_at": int(time.time()), "estimated_finish": None} if to == "cancelled" else {}
        if not jobs.update(job_id, only_if=allowed, status=to, **extra):
            raise APIError(400, f"job {job_id} is {jobs.get(job_id)['status']}: it can be {to} only while "
                                f"{' or '.join(allowed)}", code="invalid_state")
        jobs.event(job_id, message)
        return store.job_object(jobs.get(job["id"]))

    @api.post("/v1/fine_tuning/jobs/{job_id}/cancel")
    def cancel(job_id: str):
        return move(job_id, "cancelled", store.ACTIVE, "Fine-tuning job cancelled")

    @api.post("/v1/fine_tuning/jobs/{job_id}/pause")
    def pause(job_id: str):
        return move(job_id, "paused", ("queued", "running"), "Fine-tuning job paused: resume continues from the "
                                                             "last checkpoint")

    @api.post("/v1/fine_tuning/jobs/{job_id}/resume")
    def resume(job_id: str):
        return move(job_id, "queued", ("paused",), "Fine-tuning job resumed: queued")

    @api.get("/v1/fine_tuning/jobs/{job_id}/events")
    def events(job_id: str, after: str | None = Query(None, max_length=128), limit: int = Query(20, ge=1, le=1000)):
        found_job(job_id)
        data, more = jobs.events(job_id, after, limit)
        return {"object": "list", "data": data, "has_more": more}

    @api.get("/v1/fine_tuning/jobs/{job_id}/checkpoints")
    def checkpoints(job_id: str, after: str | None = Query(None, max_length=128),
                    limit: int = Query(10, ge=1, le=1000)):
        """The kept weights: tailored keeps the best checkpoint by validation loss, which is the model itself."""
        job = found_job(job_id)
        found = []
        if job["status"] == "succeeded":
            step = job["best_step"] or 0
            found.append({"object": "fine_tuning.job.checkpoint", "id": f"ftckpt-{job_id.removeprefix('ftjob-')}",
                          "created_at": job["finished_at"], "fine_tuning_job_id": job_id, "step_number": step,
                          "fine_tuned_model_checkpoint": f"{model_name(job)}:ckpt-step-{step}",
                          "metrics": {"step": step, **json.loads(job["best_metrics"] or "{}")}})
        return _page(found, after, limit)


def trainable_bases(served_base: str) -> list[str]:
    """The names a job's `model` may use: the bundled bases and the one this server serves (never any path)."""
    return list(dict.fromkeys([served_base, *NAMED_BASES]))
