"""The OpenAI-compatible HTTP layer: request shapes, auth, limits and streaming over a `Pool`."""

from __future__ import annotations

import asyncio
import hmac
import json
import threading
import time
import uuid
from typing import Literal

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from tailored.config import ServerConfig
from tailored.data import tools
from tailored.data.encode import render_prompt
from tailored.data.formats import as_trained
from tailored.server.errors import APIError, error_response as _error
from tailored.server.pool import Job, Pool, UnknownModel

MAX_STOP = 4
MAX_STOP_CHARS = 64


class Message(BaseModel):
    role: Literal["system", "user", "assistant", "tool"]
    content: str | None = None  # null on an assistant turn that only calls tools
    tool_calls: list[dict] | None = None
    tool_call_id: str | None = None
    name: str | None = None


class Sampling(BaseModel):
    temperature: float | None = Field(None, ge=0, le=2)  # 0 or absent: greedy, as evaluated
    top_p: float | None = Field(None, gt=0, le=1)
    seed: int | None = Field(None, ge=0, le=2**63 - 1)


class ChatRequest(Sampling):
    model: str
    messages: list[Message] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    stream: bool = False
    stop: str | list[str] | None = None
    n: int = 1
    tools: list[dict] | None = None  # rendered as training renders them (data/tools.py)
    tool_choice: str | dict | None = None  # accepted; the model decides, as it was trained to


class CompletionRequest(Sampling):
    model: str
    prompt: str
    max_tokens: int | None = Field(None, ge=1)
    stream: bool = False
    stop: str | list[str] | None = None
    n: int = 1


class BodyLimit:
    """Refuse bodies over the limit with 413 before any parsing, whatever Content-Length claims."""

    def __init__(self, app, limit: int, streamed: frozenset = frozenset()):
        self.app, self.limit, self.streamed = app, limit, streamed  # streamed routes enforce a cap of their own

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or (scope["method"], scope["path"]) in self.streamed:
            return await self.app(scope, receive, send)
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                response = _error(413, f"request body is over {self.limit} bytes", "invalid_request_error",
                                  "request_too_large")
                return await response(scope, receive, send)
            chunks.append(chunk)
            more = message.get("more_body", False)
        body, sent = b"".join(chunks), False

        async def replay():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # later messages: the client disconnecting

        return await self.app(scope, replay, send)


def create_app(pool: Pool, cfg: ServerConfig) -> FastAPI:
    # No /docs or /openapi.json: they would be routes outside the key check.
    app = FastAPI(title="tailored", docs_url=None, redoc_url=None, openapi_url=None)
    key = cfg.api_key.encode() if cfg.api_key else None
    in_flight = {"n": 0}
    lock = threading.Lock()

    def require_key(request: Request) -> None:
        if key is None:
            return
        given = request.headers.get("authorization", "")
        token = given[7:].encode() if given.lower().startswith("bearer ") else b""
        if not hmac.compare_digest(token, key):  # constant time: no guessing the key byte by byte
            raise APIError(401, "missing or wrong API key: send 'Authorization: Bearer KEY'",
                           "invalid_request_error", "invalid_api_key")

    @app.exception_handler(APIError)
    async def api_error(_, e: APIError):
        return _error(e.status, e.message, e.kind, e.code, e.headers, e.param)

    @app.exception_handler(RequestValidationError)
    async def bad_request(_, e: RequestValidationError):
        first = e.errors()[0] if e.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", []) if p != "body")
        return _error(400, f"{where}: {first.get('msg', 'invalid request')}", "invalid_request_error")

    def admit():
        with lock:
            if in_flight["n"] >= cfg.max_in_flight:
                raise APIError(429, f"server busy: {cfg.max_in_flight} requests in flight; retry shortly",
                               "rate_limit_exceeded", "rate_limit_exceeded", {"Retry-After": "1"})
            in_flight["n"] += 1

    def release():
        with lock:
            in_flight["n"] -= 1

    def prepare(model: str, text_of, max_tokens: int | None, stop, n: int, conversation: list[dict]):
        if n != 1:
            raise APIError(400, "n must be 1: ask again (with another seed) for another choice",
                           "invalid_request_error", param="n")
        stops = [stop] if isinstance(stop, str) else list(stop or [])
        if len(stops) > MAX_STOP or any(len(s) > MAX_STOP_CHARS or not s for s in stops):
            raise APIError(400, f"stop: at most {MAX_STOP} non-empty sequences of {MAX_STOP_CHARS} characters",
                           "invalid_request_error")
        try:
            served = pool.lookup(model)
        except UnknownModel as e:
            raise APIError(404, str(e), "invalid_request_error", "model_not_found") from None
        served = pool.route(served, conversation)
        text = text_of(served)
        prompt_tokens = len(served.tokenizer(text, add_special_tokens=False)["input_ids"])
        context = served.context or pool.context
        room = context - prompt_tokens
        wanted = min(256, room, cfg.max_tokens_cap) if max_tokens is None else max_tokens
        if max_tokens is not None and max_tokens > cfg.max_tokens_cap:
            raise APIError(400, f"max_tokens {max_tokens} is over this server's cap of {cfg.max_tokens_cap}",
                           "invalid_request_error")
        if room < 1 or wanted > room:
            raise APIError(400, f"the prompt is {prompt_tokens} tokens and max_tokens {wanted}; together they "
                           f"exceed the model's context of {context} tokens — shorten the prompt or lower "
                           "max_tokens", "invalid_request_error", "context_length_exceeded")
        return served, text, prompt_tokens, wanted, stops

    def finish(served, ids: list[int], stops: list[str], limit: int) -> tuple[str, str, bool]:
        """The reply text, its finish reason, and whether a stop sequence cut it."""
        ended = bool(ids) and ids[-1] in (served.tokenizer.eos_token_id, pool.tokenizer.eos_token_id)
        text = served.tokenizer.decode(ids, skip_special_tokens=True)
        cut = min((i for i in (text.find(s) for s in stops) if i >= 0), default=-1)
        if cut >= 0:
            return text[:cut], "stop", True
        return text, "stop" if ended or len(ids) < limit else "length", False

    def chat_text(req: ChatRequest):
        functions = [t.get("function", {}) for t in req.tools] if req.tools else None
        if functions and not all(isinstance(f, dict) and f.get("name") for f in functions):
            raise APIError(400, "every tool needs a function with a name", "invalid_request_error")

        def text_of(served):
            if served.kind == "classify":  # a classifier reads the text it labels: the last user turn
                if req.stream:
                    raise APIError(400, "a classifier answers with one label: ask without stream", param="stream")
                return next((m.content or "" for m in reversed(req.messages) if m.role == "user"), "")
            messages = [m.model_dump(exclude_none=True) for m in req.messages]
            messages = as_trained(messages, served.system_prompt)
            if served.retriever:  # the passages it was trained and evaluated with, as `load().generate()` adds
                messages = served.retriever.ground([messages])[0]
            return render_prompt(served.tokenizer, tools.plain_messages(messages, functions))
        return text_of

    async def respond(req, text_of, chat: bool):
        admit()
        try:
            asked = [m.model_dump(exclude_none=True) for m in req.messages] if chat else \
                [{"role": "user", "content": req.prompt}]  # what the run's router decides on
            served, text, prompt_tokens, limit, stops = prepare(req.model, text_of, getattr(req, "max_completion_tokens",
                                                                None) or req.max_tokens, req.stop, req.n, asked)
        except BaseException:
            release()
            raise
        ident, created = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex[:24]}", int(time.time())
        tokens: asyncio.Queue = asyncio.Queue()
        loop = asyncio.get_running_loop()
        sampling = {"temperature": req.temperature, "top_p": req.top_p or 1.0, "seed": req.seed} \
            if req.temperature else None  # 0 or absent: greedy, the answer `load().generate()` gives
        job = Job(served, text, limit,
                  on_token=(lambda t: loop.call_soon_threadsafe(tokens.put_nowait, t)) if req.stream else None,
                  sampling=sampling)
        future = pool.submit(job)
        # The slot frees when the worker is done with the job, however the client behaves meanwhile.
        future.add_done_callback(lambda _: release())
        if req.stream:
            # ends the stream even when the worker fails or skips the job (the streamer's own end never comes)
            future.add_done_callback(lambda _: loop.call_soon_threadsafe(tokens.put_nowait, None))
            return StreamingResponse(stream(job, tokens, stops, chat, ident, created, req.model,
                                            bool(chat and getattr(req, "tools", None))),
                                     media_type="text/event-stream")
        try:
            ids = await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            job.cancelled.set()  # the client went away before its turn: skip the work
            raise
        if isinstance(ids, str):  # a classifier's label: one piece, no tokens generated
            content, reason, ids = ids, "stop", [ids]
        else:
            content, reason, _ = finish(served, ids, stops, limit)
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": len(ids), "total_tokens": prompt_tokens + len(ids)}
        choice = {"index": 0, "finish_reason": reason, "logprobs": None}
        message = {"role": "assistant", "content": content}
        if chat and getattr(req, "tools", None):
            text, calls = tool_calls(content)
            if calls:
                message = {"role": "assistant", "content": text, "tool_calls": calls}
                choice["finish_reason"] = "tool_calls"
        choice.update({"message": message} if chat else {"text": content})
        return {"id": ident, "object": "chat.completion" if chat else "text_completion", "created": created,
                "model": req.model, "choices": [choice], "usage": usage}

    def tool_calls(content: str) -> tuple[str | None, list[dict]]:
        """OpenAI's shape for a reply that calls functions: its text, and the calls with ids."""
        text, calls = tools.split_reply(content)
        return text, [{"id": f"call_{uuid.uuid4().hex[:24]}", "type": "function",
                       "function": {"name": c["name"], "arguments": json.dumps(c["arguments"], ensure_ascii=False)}}
                      for c in calls or []]  # None: the reply is plain text, tools offered or not

    async def stream(job: Job, tokens: asyncio.Queue, stops, chat, ident, created, model, with_tools: bool = False):
        """Server-sent chunks. With tools, the reply is held to its end: only then is it known to be a call."""
        served, limit = job.served, job.max_tokens
        kind = "chat.completion.chunk" if chat else "text_completion"

        def event(delta: str | None, reason: str | None = None, first: bool = False, calls=None) -> str:
            if chat:
                body = {"role": "assistant", "content": ""} if first else ({"content": delta} if delta else {})
                if calls:
                    body["tool_calls"] = [{"index": i, **c} for i, c in enumerate(calls)]
                choice = {"index": 0, "delta": body, "finish_reason": reason, "logprobs": None}
            else:
                choice = {"index": 0, "text": delta or "", "finish_reason": reason, "logprobs": None}
            return "data: " + json.dumps({"id": ident, "object": kind, "created": created, "model": model,
                                          "choices": [choice]}) + "\n\n"

        ids: list[int] = []
        sent, hold = 0, max((len(s) for s in stops), default=1) - 1
        try:
            if chat:
                yield event(None, first=True)
            while True:
                token = await tokens.get()
                if token is None:
                    break
                ids.append(token)
                content, reason, cut = finish(served, ids, stops, limit)
                if cut:
                    job.cancelled.set()  # a stop sequence appeared: end generation early
                    break
                safe = len(content) - hold  # hold back what could be the start of a stop sequence
                if safe > sent and not with_tools:
                    yield event(content[sent:safe])
                    sent = safe
            content, reason, _ = finish(served, ids, stops, limit)
            text, calls = tool_calls(content) if with_tools else (content, [])
            if calls:
                yield event(text or None, calls=calls)
                reason = "tool_calls"
            elif len(content) > sent:
                yield event(content[sent:])
            yield event(None, reason)
            yield "data: [DONE]\n\n"
        finally:
            job.cancelled.set()  # a client that went away stops the generation, which frees its slot

    @app.get("/health")
    def health():
        return {"status": "ok", "base": pool.base_name}

    @app.get("/v1/models", dependencies=[Depends(require_key)])
    def models():
        return {"object": "list", "data": [{"id": n, "object": "model", "created": 0, "owned_by": "tailored"}
                                           for n in pool.names()]}

    @app.post("/v1/chat/completions", dependencies=[Depends(require_key)])
    async def chat_completions(req: ChatRequest):
        return await respond(req, chat_text(req), True)

    @app.post("/v1/completions", dependencies=[Depends(require_key)])
    async def completions(req: CompletionRequest):
        return await respond(req, lambda served: req.prompt, False)

    if cfg.jobs:
        from tailored.server.fine_tuning import add_routes, trainable_bases

        add_routes(app, pool.runs_dir, cfg, trainable_bases(pool.base_name), require_key)
    app.add_middleware(BodyLimit, limit=cfg.max_body_bytes, streamed=frozenset({("POST", "/v1/files")}))
    return app
