"""One base model in memory, many LoRA adapters over it, and one worker thread that batches generation.

All model work happens on the worker thread, so adapters can be switched without locks; request
handlers only queue jobs and wait for their results.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import OrderedDict
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

from tailored.config import ServerConfig
from tailored.device import choose_bf16, device_of
from tailored.errors import TailoredError
from tailored.fine_tuning import store
from tailored.evaluation.generate import generate_ids
from tailored.models import context_length, load_causal_lm, load_tokenizer, resolve_base
from tailored.models.load import quiet_transformers
from tailored.runs import COMPLETE, read_json, resolve_run
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


@dataclass
class Job:
    served: Served
    text: str
    max_tokens: int
    future: Future = field(default_factory=Future)
    on_token: object = None  # streaming: called with each new token id on the worker thread
    cancelled: threading.Event = field(default_factory=threading.Event)
    sampling: dict | None = None  # {"temperature", "top_p", "seed"}; None is greedy, and batches with others


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
        self.bf16 = choose_bf16(None, device_of(self.model))
        self.adapters: OrderedDict[str, Served] = OrderedDict()
        self.whole: OrderedDict[str, tuple[Served, Tuned]] = OrderedDict()  # full and classifier runs, by LRU
        self.fine_tuning = store.Jobs(self.runs_dir) if cfg.jobs else None  # `ft:` names
        self.jobs: queue.Queue[Job] = queue.Queue()
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
                          lineage["task"].get("system_prompt"), kind, context_length(base))
        if lineage["base"]["name"] != self.base_name:
            raise UnknownModel(f"model '{name}' was trained on base {lineage['base']['name']}; this server "
                               f"serves {self.base_name}")
        return Served(key, load_tokenizer(self.base, path / "tokenizer"), lineage["task"].get("system_prompt"))

    # ---- generation on the worker thread -------------------------------------------------------
    def submit(self, job: Job) -> Future:
        self.jobs.put(job)
        return job.future

    def submit_wait(self, served: Served) -> None:
        self.submit(Job(served, "", 0)).result()  # a no-op job: loads the adapter

    def _activate(self, served: Served) -> None:
        from peft import PeftModel

        if not served.key:
            return
        if served.kind != "lora":
            if served.key not in self.whole:
                self.whole[served.key] = (served, Tuned(self.runs_dir / served.key))
                while len(self.whole) > self.cfg.max_adapters:
                    self.whole.popitem(last=False)
            self.whole.move_to_end(served.key)
            return
        if served.key not in self.adapters:
            path = str(self.runs_dir / served.key / "adapter")
            with quiet_transformers():
                if not hasattr(self.model, "peft_config"):
                    self.model = PeftModel.from_pretrained(self.model, path, adapter_name=served.key)
                else:
                    self.model.load_adapter(path, adapter_name=served.key)
            self.adapters[served.key] = served
            while len(self.adapters) > self.cfg.max_adapters:  # least recently used goes first
                old, _ = self.adapters.popitem(last=False)
                self.model.delete_adapter(old)
        self.adapters.move_to_end(served.key)
        self.model.set_adapter(served.key)

    def _batch(self, first: Job) -> list[Job]:
        """`first` plus queued jobs for the same model, waiting briefly so concurrent requests share a batch."""
        batch, deadline, later = [first], time.monotonic() + self.cfg.batch_wait_ms / 1000, []
        while len(batch) < self.cfg.batch_size and first.on_token is None and first.sampling is None:
            try:
                job = self.jobs.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            # a sampled job runs alone: its seed then decides its tokens, whatever else is asked meanwhile
            same = job.served.key == first.served.key and job.on_token is None and job.max_tokens > 0 \
                and job.sampling is None
            (batch if same else later).append(job)
        for job in later:
            self.jobs.put(job)
        return batch

    def _generate(self, served: Served, jobs: list[Job]) -> None:
        """One batched generation for `jobs` (a streaming job always runs alone); results go to their futures."""
        import contextlib

        on_token = cancelled = None
        if jobs[0].on_token is not None:
            on_token, cancelled = jobs[0].on_token, jobs[0].cancelled.is_set
        if served.kind == "classify":  # a label per text, in one piece
            tuned = self.whole[served.key][1]
            for job, label in zip(jobs, tuned.generate([j.text for j in jobs], batch_size=len(jobs))):
                job.future.set_result(label)
            return
        model = self.whole[served.key][1].model if served.kind == "full" else self.model
        adapter_off = self.model.disable_adapter() if not served.key and hasattr(self.model, "peft_config") \
            else contextlib.nullcontext()
        with adapter_off:
            ids = generate_ids(model, served.tokenizer, [j.text for j in jobs], [j.max_tokens for j in jobs],
                               len(jobs), self.bf16, on_token, cancelled, jobs[0].sampling)
        for job, row in zip(jobs, ids):
            job.future.set_result(row)

    def _work(self) -> None:
        while True:
            batch = self._batch(self.jobs.get())
            live = [j for j in batch if not j.cancelled.is_set()]
            try:
                self._activate(batch[0].served)
                live = [j for j in live if j.max_tokens > 0]  # a zero-token job only loads its adapter
                if live:
                    self._generate(batch[0].served, live)
                for job in batch:
                    if not job.future.done():
                        job.future.set_result([])
            except Exception as e:  # noqa: BLE001 - reported to every waiting request, the worker lives on
                for job in batch:
                    if not job.future.done():
                        job.future.set_exception(e)

