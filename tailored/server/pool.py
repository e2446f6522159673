"""One base model in memory, many LoRA adapters over it, and one worker thread that runs a continuous batch.

All model work happens on the worker thread, so adapters can be switched without locks; request
handlers only queue jobs and wait for their results.
"""

from __future__ import annotations

import queue
import threading
from collections import OrderedDict
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

from tailored.config import ServerConfig
from tailored.data.encode import stop_token_ids
from tailored.device import autocast, device_of, generation_bf16
from tailored.errors import TailoredError
from tailored.fine_tuning import store
from tailored.evaluation.generate import generate_ids
from tailored.models import context_length, load_causal_lm, load_tokenizer, resolve_base
from tailored.models.batch import Batcher, Row
from tailored.models.decode import adapters_in_use, supported
from tailored.models.load import quiet_transformers
from tailored.runs import COMPLETE, read_json, resolve_run
from tailored.models.retrieval import Retriever
from tailored.models.router import Router
from tailored.tuned import Tuned

WEIGHTS = ("adapter", "model", "classifier")  # a LoRA run, a full fine-tune, a classifier


class UnknownModel(TailoredError):
    pass


@dataclass
class Served:
    """What a request's `model` names: the base, or one run's adapter with its own template."""

    key: str  # "" for the base, else the run folder relative to runs_dir, e.g. "support/v2"
    tokenizer: object
    system_prompt: str | None = None
    kind: str = "lora"  # or "full" (a whole fine-tuned model) or "classify" (answers with a label)
    context: int | None = None  # a whole model's own context; None: the base's
    retriever: object = None  # a run trained with --documents' passages: chat questions are grounded in them
    router: object = None  # a guarded LoRA run's: requests unlike its training inputs go to the base (models/router.py)


@dataclass
class Job:
    served: Served
    text: str
    max_tokens: int
    future: Future = field(default_factory=Future)
    on_token: object = None  # streaming: called with each new token id on the worker thread
    cancelled: threading.Event = field(default_factory=threading.Event)
    sampling: dict | None = None  # {"temperature", "top_p", "seed"}; None is greedy


class Pool:
    def __init__(self, cfg: ServerConfig, runs: list[str] | None = None):
        self.cfg = cfg
        self.runs_dir = Path(cfg.runs_dir).resolve()
        preload = [self._folder(self._under_runs_dir(r)) for r in runs or []]
        bases = {read_json(p / "run.json")["base"]["name"] for p in preload}
        if len(bases) > 1:
            raise TailoredError(f"runs use different bases ({', '.join(sorted(bases))}); one server serves one base")
        self.base_name = bases.pop() if bases else cfg.base
        self.base = resolve_base(self.base_name)
        self.model = load_causal_lm(self.base)
        self.tokenizer = load_tokenizer(self.base)
        self.context = context_length(self.base)
        self.bf16 = generation_bf16(None, device_of(self.model))
        self.adapters: OrderedDict[str, Served] = OrderedDict()
        self.retrievers: dict[str, Retriever | None] = {}  # by run key: read once, its encoder loaded once
        self.routers: dict[str, Router | None] = {}  # the same for routers
        self.whole: OrderedDict[str, tuple[Served, Tuned]] = OrderedDict()  # full and classifier runs, by LRU
        self.fine_tuning = store.Jobs(self.runs_dir) if cfg.jobs else None  # `ft:` names
        self.jobs: queue.Queue[Job] = queue.Queue()
        self.batcher = self._batcher()  # touched only by the worker thread
        self._worker = threading.Thread(target=self._work, name="tailored-generate", daemon=True)
        self._worker.start()
        for path in preload:
            self.submit_wait(self.lookup(str(path.relative_to(self.runs_dir))))

    # ---- names -------------------------------------------------------------------------------
    def _under_runs_dir(self, ref: str) -> str:
        """The operator's run to load at start, as a name under runs_dir.

        `tailor serve NAME --runs-dir /abs/runs` resolves NAME to an absolute folder, which request
        names may never be; one inside runs_dir is taken as its relative name, one outside is refused.
        """
        path = Path(ref)
        if not path.is_absolute():
            return ref
        try:
            return str(path.resolve().relative_to(self.runs_dir))
        except ValueError:
            raise TailoredError(f"{ref} is outside the runs folder {self.runs_dir}; serve it with --runs-dir set "
                                "to the folder that holds it") from None

    def _folder(self, ref: str) -> Path:
        """A finished run folder inside runs_dir; nothing outside it is ever opened."""
        if not ref or Path(ref).is_absolute() or ".." in Path(ref).parts or "\\" in ref:
            raise UnknownModel(f"model '{ref[:100]}' not found")
        try:
            path = resolve_run(ref, self.runs_dir).resolve()
        except TailoredError:
            raise UnknownModel(f"model '{ref[:100]}' not found — GET /v1/models lists what this server has") from None
        if not path.is_relative_to(self.runs_dir):
            raise UnknownModel(f"model '{ref[:100]}' not found")
        return path

    def _fine_tuned(self, name: str) -> Path:
        """The run behind a fine-tuning job's `ft:` model name."""
        path = self.fine_tuning.model_run(name)
        if path is None or not path.resolve().is_relative_to(self.runs_dir) or not (path / COMPLETE).exists():
            raise UnknownModel(f"model '{name[:100]}' not found — GET /v1/models lists what this server has")
        return path.resolve()

    def names(self) -> list[str]:
        found = [self.base_name, *(self.fine_tuning.models() if self.fine_tuning else [])]
        for run in sorted(self.runs_dir.glob("*/v*/run.json")):
            if (run.parent / COMPLETE).exists() and any((run.parent / d).is_dir() for d in WEIGHTS):
                found.append(str(run.parent.relative_to(self.runs_dir)))
                found.append(run.parent.parent.name)
        return list(dict.fromkeys(found))

    def lookup(self, name: str) -> Served:
        """The base or a run's adapter for a request's `model`; loading the adapter happens on the worker."""
        if name in (self.base_name, "base"):
            return Served("", self.tokenizer)
        path = self._fine_tuned(name) if name.startswith("ft:") and self.fine_tuning else self._folder(name)
        key = str(path.relative_to(self.runs_dir))
        if key in self.adapters:
            return self.adapters[key]
        if key in self.whole:
            return self.whole[key][0]
        lineage = read_json(path / "run.json")
        if not (path / "adapter").is_dir():  # a whole model of its own, whatever its base
            kind = "classify" if (path / "classifier").is_dir() else "full"
            base = resolve_base(lineage["base"]["name"])
            return Served(key, load_tokenizer(base, path / ("classifier" if kind == "classify" else "tokenizer")),
                          lineage["task"].get("system_prompt"), kind, context_length(base),
                          None if kind == "classify" else self._retriever(key, path))
        if lineage["base"]["name"] != self.base_name:
            raise UnknownModel(f"model '{name}' was trained on base {lineage['base']['name']}; this server "
                               f"serves {self.base_name}")
        if key not in self.routers:
            self.routers[key] = Router.open(path)
        return Served(key, load_tokenizer(self.base, path / "tokenizer"), lineage["task"].get("system_prompt"),
                      retriever=self._retriever(key, path), router=self.routers[key])

    def route(self, served: Served, conversation: list[dict]) -> Served:
        """`served`, or for a request its router sends to the base, the base with the run's template and prompt:
        the answer `load(run).generate()` gives (tuned.py)."""
        if served.router is None or not served.router.to_base([conversation])[0]:
            return served
        return Served("", served.tokenizer, served.system_prompt, retriever=served.retriever)

    def _retriever(self, key: str, path: Path):
        if key not in self.retrievers:
            self.retrievers[key] = Retriever.open(path)
        return self.retrievers[key]

    # ---- generation on the worker thread -------------------------------------------------------
    def _batcher(self) -> Batcher:
        return Batcher(self.model, self.cfg.batch_size, int(self.cfg.kv_cache_gb * 2**30))

    def submit(self, job: Job) -> Future:
        self.jobs.put(job)
        return job.future

    def submit_wait(self, served: Served) -> None:
        self.submit(Job(served, "", 0)).result()  # a no-op job: loads the adapter

    def _activate(self, served: Served, joining: list[Row]) -> None:
        from peft import PeftModel

        if not served.key:
            return
        if served.kind != "lora":
            if served.key not in self.whole:
                self.whole[served.key] = (served, Tuned(self.runs_dir / served.key, engine="torch"))
                while len(self.whole) > self.cfg.max_adapters:
                    self.whole.popitem(last=False)
            self.whole.move_to_end(served.key)
            return
        if served.key not in self.adapters:
            path = str(self.runs_dir / served.key / "adapter")
            with quiet_transformers():
                if not hasattr(self.model, "peft_config"):
                    self.model = PeftModel.from_pretrained(self.model, path, adapter_name=served.key)
                    self.batcher.model = self.model
                else:
                    self.model.load_adapter(path, adapter_name=served.key)
            self.adapters[served.key] = served
            # rows still generating, or about to join, keep their adapter loaded
            busy = self.batcher.adapters() | {a for row in joining for a in row.adapters} | {served.key}
            idle = [k for k in self.adapters if k not in busy]  # least recently used first
            for old in idle[: max(0, len(self.adapters) - self.cfg.max_adapters)]:
                del self.adapters[old]
                self.model.delete_adapter(old)
        self.adapters.move_to_end(served.key)
        self.model.set_adapter(served.key)

    def _adapter_off(self, served: Served):
        """The base's own forward for the base's rows, adapters loaded or not."""
        import contextlib

        if served.kind == "lora" and not served.key and hasattr(self.model, "peft_config"):
            return self.model.disable_adapter()
        return contextlib.nullcontext()

    def _start(self, job: Job, waiting: list[Job], joining: list[Row]) -> None:
        """Begin `job`: add it to the rows about to join the running batch, or finish it here (classifiers,
        whole models, other architectures)."""
        served = job.served
        self._activate(served, joining)
        if job.max_tokens <= 0:  # a zero-token job only loads its adapter
            job.future.set_result([])
            return
        if served.kind == "lora" and supported(self.model):
            prompt = served.tokenizer(job.text, add_special_tokens=False)["input_ids"]
            stop = frozenset(stop_token_ids(served.tokenizer, self.model))
            row = Row(prompt, job.max_tokens, stop, job.on_token, job.cancelled.is_set, job.sampling, tag=job)
            with self._adapter_off(served):
                row.adapters = adapters_in_use(self.model)
            joining.append(row)
            return
        # outside the loop: queued greedy requests for the same model go with it as one batch
        jobs = [job]
        if job.on_token is None and job.sampling is None:
            for other in list(waiting):
                if len(jobs) < self.cfg.batch_size and other.served.key == served.key and other.on_token is None \
                        and other.sampling is None and other.max_tokens > 0 and not other.cancelled.is_set():
                    waiting.remove(other)
                    jobs.append(other)
        texts = [j.text for j in jobs]
        if served.kind == "classify":  # a label per text, in one piece
            results = self.whole[served.key][1].generate(texts, batch_size=len(jobs))
        else:
            model = self.whole[served.key][1].model if served.kind == "full" else self.model
            on_token, cancelled = (job.on_token, job.cancelled.is_set) if job.on_token else (None, None)
            with self._adapter_off(served):
                results = generate_ids(model, served.tokenizer, texts, [j.max_tokens for j in jobs], len(jobs),
                                       self.bf16, on_token, cancelled, job.sampling)
        for one, result in zip(jobs, results):
            one.future.set_result(result)

    def _work(self) -> None:
        """Start what has arrived while the batch has room, then give every running row one more token."""
        waiting: list[Job] = []
        while True:
            if not waiting and not self.batcher:  # idle: sleep until a request comes
                waiting.append(self.jobs.get())
            while True:
                try:
                    waiting.append(self.jobs.get_nowait())
                except queue.Empty:
                    break
            joining: list[Row] = []  # prefilled together, in one pass
            while waiting and len(self.batcher) + len(joining) < self.cfg.batch_size:
                job = waiting.pop(0)
                if job.cancelled.is_set():  # the client went away before its turn
                    job.future.set_result([])
                    continue
                try:
                    self._start(job, waiting, joining)
                except Exception as e:  # noqa: BLE001 - reported to its request, the worker lives on
                    job.future.set_exception(e)
                if joining and joining[-1].tag is job and not self.batcher.fits(joining):
                    joining.pop()  # no memory for its keys yet: first in line, it joins when rows leave
                    waiting.insert(0, job)
                    break
            if joining:
                try:
                    with autocast(device_of(self.model), self.bf16):
                        joined = self.batcher.add_many(joining)
                except Exception as e:  # noqa: BLE001 - reported to those requests, the worker lives on
                    joined = [False] * len(joining)
                    for row in joining:
                        row.tag.future.set_exception(e)
                for row, ok in zip(joining, joined):
                    if not ok and not row.tag.future.done():
                        row.tag.future.set_result(row.tokens)
            if self.batcher:
                try:
                    with autocast(device_of(self.model), self.bf16):
                        for row in self.batcher.step():
                            row.tag.future.set_result(row.tokens)
                except Exception as e:  # noqa: BLE001 - every running request hears of it, the worker lives on
                    for row in self.batcher.rows:
                        if not row.tag.future.done():
                            row.tag.future.set_exception(e)
                    self.batcher = self._batcher()
