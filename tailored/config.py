"""Typed settings, one dataclass per concern. Every field has help text; the CLI flags come from here.

A value of None means "choose automatically"; the chosen value and the reason are saved with the run.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Literal

from tailored.errors import TailoredError


def _help(text: str, flag: str | None = None, **kw):
    """A field with its help text (and its command-line flag when the field name would not read well)."""
    return field(metadata={"help": text, **({"flag": flag} if flag else {})}, **kw)


class SettingsError(TailoredError):
    """Settings that cannot work, one line each; `build` collects them across every config at once."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid settings:\n" + "\n".join(f"  {p}" for p in problems))


def _check(problems: list[str], owner: str) -> None:
    if problems:
        raise SettingsError([f"{owner}: {p}" for p in problems])


def build(values: dict, *classes) -> dict:
    """One instance of each config class from `values` (a flat name → value mapping, unknown names ignored).

    Every problem in every class is reported together, as litgpt's `validate_args` does, rather than
    stopping at the first class that complains. Returns {class name: instance}.
    """
    built, problems = {}, []
    for cls in classes:
        try:
            built[cls.__name__] = cls(**{f.name: values[f.name] for f in fields(cls) if f.name in values})
        except SettingsError as e:
            problems.extend(e.problems)
    if problems:
        raise SettingsError(problems)
    return built


def parse_floors(items: list[str] | None) -> dict[str, float]:
    """`--min METRIC=VALUE` items as {metric: floor}."""
    floors = {}
    for item in items or []:
        metric, _, value = item.partition("=")
        try:
            floors[metric.strip()] = float(value)
        except ValueError:
            metric = ""
        if not metric.strip():
            raise TailoredError(f"--min {item!r}: use METRIC=VALUE, e.g. --min rouge_l=60")
    return floors


@dataclass
class DataConfig:
    valid: str | None = _help("Validation file. Default: hold out a seeded split of the training data.", default=None)
    heldout: str | None = _help(
        "Held-out test file for the base-vs-tuned comparison, never trained on. "
        "Default: DATA's sibling NAME.heldout.EXT if it exists, else the validation split.", default=None)
    valid_fraction: float = _help("Share of the data held out for validation when --valid is not given.", default=0.1)
    max_length: int | None = _help("Longest example in tokens. Default: the longest example, capped at 2048 "
                                   "and the base's context.", default=None)
    too_long: Literal["error", "drop"] = _help("What to do with examples over --max-length: 'error' (stop and list them) or 'drop' "
                          "(skip them and say how many). Never truncated silently.", default="error")
    skip_invalid: bool = _help("Drop rows with errors (and report how many) instead of stopping.", default=False)
    mix: str | None = _help("General data mixed into training to limit forgetting, as FILE:FRACTION (e.g. "
                            "general.jsonl:0.2 makes 20% of the training rows come from FILE).", default=None)
    documents: str | None = _help("Documents to learn the facts from (manuals, policies, help pages): a .txt or .md "
                                  "file, a folder of them, or JSONL/CSV/Parquet rows with only 'text'. Trained on "
                                  "with the loss on every token, in the same run as DATA.", default=None)
    chunk_tokens: int = _help("Documents are cut into windows of this many tokens (about a page); short windows "
                              "keep attention cheap and batch well with chat rows.", default=256)
    chunk_overlap: int = _help("Tokens each document window repeats from the one before, as context only (not "
                               "learned twice), so no window starts cold mid-sentence.", default=32)
    retrieve: int = _help("With --documents and chat rows: how many of the documents' passages closest to each "
                          "question go into its system message, in training, evaluation and every answer, so the "
                          "model answers from them. The run keeps the passages (retrieval.sqlite); 0 turns it off.",
                          default=3)
    guard: float = _help("Share of training rows that replay the base model's own answers, half to general "
                         "requests (written for tailored, bundled) and half to your inputs without the task's "
                         "system prompt, so tuning keeps what the base knew. 0 turns the guard off. Generating "
                         "models only.", default=0.2)
    route: bool = _help("With the guard on, a LoRA run answers requests unlike your training inputs with the "
                        "untouched base (the adapter switched off), so general questions get the base's own answers. "
                        "Decided by a small classifier fitted on your inputs; kept only if it sends at most 5% of your "
                        "validation inputs to the base. Merged and GGUF exports cannot switch and answer everything "
                        "with the adapter.", default=True)

    @property
    def mix_file(self) -> str | None:
        return self.mix.rsplit(":", 1)[0] if self.mix else None

    @property
    def mix_fraction(self) -> float:
        return float(self.mix.rsplit(":", 1)[1]) if self.mix else 0.0

    def __post_init__(self):
        problems = []
        if self.mix is not None:
            file, _, fraction = self.mix.rpartition(":")
            try:
                ok = bool(file) and 0 < float(fraction) < 1
            except ValueError:
                ok = False
            if not ok:
                problems.append(f"mix={self.mix!r}; use FILE:FRACTION with a fraction between 0 and 1, "
                                "e.g. general.jsonl:0.2")
        if self.chunk_tokens < 16:
            problems.append(f"chunk_tokens={self.chunk_tokens} is too small; use at least 16 (e.g. 256)")
        if not 0 <= self.chunk_overlap < self.chunk_tokens // 2:
            problems.append(f"chunk_overlap={self.chunk_overlap} must be 0 or more and under half of chunk_tokens "
                            f"({self.chunk_tokens})")
        if not 0 <= self.retrieve <= 10:
            problems.append(f"retrieve={self.retrieve} must be 0 (off) to 10 passages (e.g. 3)")
        if not 0.0 <= self.guard < 0.5:
            problems.append(f"guard={self.guard} must be 0 (off) or a share below 0.5 (e.g. 0.2)")
        if not 0.0 < self.valid_fraction < 0.5:
            problems.append(f"valid_fraction={self.valid_fraction} must be between 0 and 0.5 (e.g. 0.1)")
        if self.max_length is not None and self.max_length < 8:
            problems.append(f"max_length={self.max_length} is too small; use at least 8")
        if self.too_long not in ("error", "drop"):
            problems.append(f"too_long={self.too_long!r}; use 'error' or 'drop'")
        _check(problems, "data")


@dataclass
class TrainConfig:
    task: Literal["generate", "classify"] = _help("'generate' (a chat model that writes answers) or 'classify' (an encoder with a "
                      "classification head, for text/label data).", default="generate")
    method: Literal["lora", "full", "dpo"] = _help(
        "'lora' (small adapters on a frozen base), 'full' (every weight; small bases only) or 'dpo' (LoRA "
        "preference tuning on prompt/chosen/rejected rows). Classifiers always train every weight.", default="lora")
    beta: float = _help("DPO only: how far the tuned model may move from the base (the reference); smaller "
                        "lets it move further.", default=0.1)
    base: str | None = _help("Base model: smollm2-135m, gemma3-270m, minilm-l6 (classify), a local folder, a "
                             ".gguf file or a hub id. Default: smollm2-135m, or minilm-l6 for --task classify.",
                             default=None)
    epochs: int | None = _help("Passes over the training data. Default: chosen from the data size.", default=None)
    learning_rate: float | None = _help("Peak learning rate. Default: chosen from the method and base size.",
                                        default=None)
    learning_rate_multiplier: float | None = _help(
        "OpenAI's name: a factor on the learning rate tailored would choose (so 2 doubles the default). Set "
        "this or --learning-rate, not both.", default=None)
    lora_rank: int = _help("LoRA rank on every linear layer.", default=16)
    lora_alpha: int | None = _help("LoRA scaling numerator. Default: twice the rank.", default=None)
    lora_dropout: float = _help("Dropout on the LoRA input; 0 keeps runs deterministic and fast.", default=0.0)
    batch_size: int | None = _help("Examples per optimizer step (grouped by length to save padding). Default: 8, "
                                   "fewer for tiny data sets so an epoch still has ~10 steps.", default=None)
    # 2, not 3: on the validation histories of 77 real runs (50 in the eighteenth session, 27 on 2026-12-05),
    # stopping after 2 validations without a new lowest kept the same weights as 3 every time, in 1-4% fewer
    # steps (dialogsum 98 -> 84): the steps after them only ever confirmed the stop
    patience: int = _help("Stop after this many validations without a better validation loss.", default=2)
    evals_per_epoch: int = _help("Validations per epoch; the best one is kept.", default=2)
    plateau: float = _help("Keep the latest validation whose loss is within this share of the lowest (0.01: 1%), "
                           "not the first: on a flat validation loss the later weights have seen more of the task. "
                           "0 keeps the lowest.", default=0.01)
    warmup_ratio: float = _help("Share of steps spent warming the learning rate up.", default=0.05)
    weight_decay: float = _help("AdamW weight decay on the LoRA weights.", default=0.0)
    seed: int = _help("Seed for the split, the data order and the LoRA initialisation.", default=0)
    bf16: bool | None = _help("bfloat16 autocast. Default: on where the CPU or GPU supports it.", default=None)
    max_steps: int | None = _help("Stop after this many optimizer steps (for smoke tests).", default=None)
    micro_batch_tokens: int = _help("Run a batch as micro-batches of at most this many (padded) tokens, summing "
                                    "gradients: the same update with ~40% less peak memory and no loss of speed "
                                    "on CPU. 0: the whole batch at once.", default=1024)
    batch_order: Literal["grouped", "random"] = _help(
        "'grouped': batches of similar length in a seeded random order (less padding, faster on CPU); 'random': "
        "plain seeded shuffling, as TRL does.", default="grouped")

    def __post_init__(self):
        problems = []
        if self.task not in ("generate", "classify"):
            problems.append(f"task={self.task!r}; use 'generate' or 'classify'")
        if self.method not in ("lora", "full", "dpo"):
            problems.append(f"method={self.method!r}; use 'lora', 'full' or 'dpo'")
        if not 0 < self.beta <= 10:
            problems.append(f"beta={self.beta} must be above 0 (e.g. 0.1)")
        if self.base is None:
            self.base = "minilm-l6" if self.task == "classify" else "smollm2-135m"
        if self.epochs is not None and self.epochs < 1:
            problems.append(f"epochs={self.epochs} must be at least 1")
        if self.learning_rate is not None and not 0 < self.learning_rate < 1:
            problems.append(f"learning_rate={self.learning_rate} must be between 0 and 1 (e.g. 2e-4)")
        if self.learning_rate_multiplier is not None:
            if not 0 < self.learning_rate_multiplier <= 100:
                problems.append(f"learning_rate_multiplier={self.learning_rate_multiplier} must be above 0 (e.g. 0.5 "
                                "or 2)")
            if self.learning_rate is not None:
                problems.append("learning_rate and learning_rate_multiplier are both set; the multiplier scales the "
                                "automatic rate, so set one")
        if self.lora_rank < 1:
            problems.append(f"lora_rank={self.lora_rank} must be at least 1")
        if not 0 <= self.lora_dropout < 1:
            problems.append(f"lora_dropout={self.lora_dropout} must be in [0, 1)")
        if self.batch_size is not None and self.batch_size < 1:
            problems.append(f"batch_size={self.batch_size} must be at least 1")
        if self.patience < 1:
            problems.append(f"patience={self.patience} must be at least 1")
        if not 0 <= self.plateau < 0.1:
            problems.append(f"plateau={self.plateau} must be in [0, 0.1): a share of the lowest validation loss")
        if self.evals_per_epoch < 1:
            problems.append(f"evals_per_epoch={self.evals_per_epoch} must be at least 1")
        if not 0 <= self.warmup_ratio < 1:
            problems.append(f"warmup_ratio={self.warmup_ratio} must be in [0, 1)")
        if self.max_steps is not None and self.max_steps < 1:
            problems.append(f"max_steps={self.max_steps} must be at least 1")
        if self.micro_batch_tokens < 0:
            problems.append(f"micro_batch_tokens={self.micro_batch_tokens} must be 0 (off) or more")
        if self.batch_order not in ("grouped", "random"):
            problems.append(f"batch_order={self.batch_order!r}; use 'grouped' or 'random'")
        _check(problems, "training")


@dataclass
class EvalConfig:
    max_new_tokens: int | None = _help("Tokens generated per answer. Default: the longest reference plus a margin, "
                                       "at most 256.", default=None)
    eval_batch_size: int = _help("Prompts generated together (batched greedy decoding).", default=64)
    samples: int = _help("Side-by-side samples printed after evaluation.", default=3)
    max_rows: int | None = _help("Evaluate at most this many held-out rows (the first N).", default=None)
    metric: str | None = _help("Primary metric for the verdict and the gate (e.g. token_f1). Default: chosen "
                               "from the data (accuracy for labels, field_f1 for JSON, rouge_l for text).",
                               default=None)
    slice_by: str | None = _help("A column of the held-out rows (e.g. language, customer_segment) to report every "
                                 "metric per value of, for bias review.", default=None)
    slice_margin: float = _help("Flag slices whose primary metric is this many points under the overall figure.",
                                default=10.0)
    min_slice: int = _help("Slices with fewer rows are shown but not judged (too few to tell).", default=10)
    fail_if_worse: bool = _help("Exit 1 when the tuned model is worse than the base on the primary metric beyond "
                                "the 95% interval (for CI pipelines).", default=False)
    min: list[str] | None = _help("Absolute floors, METRIC=VALUE (repeatable): exit 1 if the tuned model is under "
                                  "any, e.g. --min rouge_l=60.", default=None)
    report: str | None = _help("Write the HTML report here. `tailor train` always writes report.html into the run.",
                               default=None)
    voice: str | None = _help("A classifier run (NAME or folder) trained on your own copy labelled 'house' against "
                              "other copy: every generated reply gets its probability of 'house', the `voice` "
                              "metric (brand voice).", default=None)
    forgetting: bool = _help("Also ask base and tuned 129 general questions with checkable answers and report the "
                             "share of the base's correct answers the tuned model keeps.", default=True)

    def __post_init__(self):
        problems = []
        if self.max_new_tokens is not None and not 1 <= self.max_new_tokens <= 4096:
            problems.append(f"max_new_tokens={self.max_new_tokens} must be between 1 and 4096")
        if self.eval_batch_size < 1:
            problems.append(f"eval_batch_size={self.eval_batch_size} must be at least 1")
        if self.samples < 0:
            problems.append(f"samples={self.samples} must be 0 or more")
        if self.max_rows is not None and self.max_rows < 1:
            problems.append(f"max_rows={self.max_rows} must be at least 1")
        if self.min_slice < 1:
            problems.append(f"min_slice={self.min_slice} must be at least 1")
        try:
            parse_floors(self.min)
        except TailoredError as e:
            problems.append(str(e))
        _check(problems, "evaluation")

    @property
    def floors(self) -> dict[str, float]:
        return parse_floors(self.min)


@dataclass
class RunConfig:
    name: str | None = _help("Run name; versions go to RUNS_DIR/NAME/vN. Default: the data file's name.",
                             default=None)
    runs_dir: str = _help("Folder that holds all runs.", default="runs")
    evaluate: bool = _help("Compare base and tuned on the held-out data after training.", default=True)
    explain: bool = _help("Print the settings that would be used and why, then stop without training.",
                          default=False)
    parent: str | None = _help(
        "Retrain from this version (NAME for its production or latest version, or NAME/vN): start from its "
        "weights, record it as the parent, report the data diff, and compare base, parent and new on the "
        "union of both held-out sets; --fail-if-worse then means worse than the parent.", flag="--from",
        default=None)
    resume: str | None = _help("An interrupted run folder to continue from its last checkpoint, with its saved "
                               "settings. Rerunning the same command on the same data also resumes.", default=None)
    processes: int = _help("Training processes on this machine, launched through torchrun (gloo). The global "
                           "batch and so every step stay the same at any number.", default=1)
    fsdp: bool = _help("Split the weights, gradients and optimizer state among the processes (FSDP): full "
                       "fine-tuning of a base too large for one process's memory. Needs --method full and --processes 2 or more.",
                       default=False)
    nnodes: int = _help("Machines in the job, for --print-launch.", default=1)
    print_launch: bool = _help("Print the torchrun line to run on each of --nnodes machines (with --processes per "
                               "machine), then stop.", default=False)

    def __post_init__(self):
        problems = []
        for name in ("processes", "nnodes"):
            if getattr(self, name) < 1:
                problems.append(f"{name}={getattr(self, name)} must be at least 1")
        _check(problems, "run")


@dataclass
class ServerConfig:
    host: str = _help("Address to listen on. The default answers only this machine; use 0.0.0.0 with an API key "
                      "to serve a network.", default="127.0.0.1")
    port: int = _help("Port to listen on.", default=8000)
    api_key: str | None = _help("Require 'Authorization: Bearer KEY' on every route but /health. Default: the "
                                "TAILORED_API_KEY environment variable, if set.", default=None)
    runs_dir: str = _help("Folder that holds the runs; request names are looked up only inside it.", default="runs")
    base: str = _help("Base to serve when no run is given (runs given decide the base themselves).",
                      default="smollm2-135m")
    max_adapters: int = _help("Adapters kept loaded; the least recently used is dropped beyond this.", default=8)
    max_in_flight: int = _help("Requests queued or running at once; more get 429 with Retry-After.", default=64)
    max_body_bytes: int = _help("Largest request body accepted; bigger ones get 413 before parsing.",
                                default=1_000_000)
    max_tokens_cap: int = _help("Most new tokens one request may ask for.", default=1024)
    batch_size: int = _help("Requests generated together: each joins the running batch at the next token and "
                            "leaves it when done, whatever adapter of the base it asks for.", default=64)
    kv_cache_gb: float = _help("Memory for the running batch's keys and values, in GiB. A request that would "
                               "pass it waits, first in line, until rows finish; one request alone always "
                               "runs.", default=4.0)
    jobs: bool = _help("Offer OpenAI's files and fine-tuning jobs API, training queued jobs in worker processes.",
                       default=True)
    concurrent_jobs: int = _help("Fine-tuning jobs trained at once; more wait in the queue. On a few CPU cores, "
                                 "two trainings slow each other badly.", default=1)
    job_threads: int | None = _help("CPU threads each training process uses. Default: all cores this process "
                                    "may use but one, so the server keeps a core to answer requests while a job "
                                    "trains.", default=None)
    max_file_bytes: int = _help("Largest file accepted by POST /v1/files; the upload streams to disk.",
                                default=512_000_000)
    allow_unauthenticated_network: bool = _help("Serve beyond this machine (a --host other than loopback) without an API key: "
                                    "anyone who can reach the port can use your models, read your uploaded "
                                    "files and start training. Refused unless given.", default=False)

    def __post_init__(self):
        problems = []
        if not 0 < self.port < 65536:
            problems.append(f"port={self.port} must be between 1 and 65535")
        for name in ("max_adapters", "max_in_flight", "max_body_bytes", "max_tokens_cap", "batch_size",
                     "concurrent_jobs", "max_file_bytes", "job_threads"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                problems.append(f"{name}={getattr(self, name)} must be at least 1")
        if not self.kv_cache_gb > 0:
            problems.append(f"kv_cache_gb={self.kv_cache_gb} must be more than 0")
        _check(problems, "server")


SECTIONS = {"train": TrainConfig, "data": DataConfig, "eval": EvalConfig, "run": RunConfig}


def template_yaml() -> str:
    """A settings file with every field at its default and its help as a comment (`tailor config`)."""
    import yaml

    lines = ["# tailored settings: pass with `tailor train DATA --config FILE`. Flags given on the command",
             "# line win over this file. null means: choose automatically (the reason is saved with the run)."]
    for section, cls in SECTIONS.items():
        lines.append(f"{section}:")
        for f in fields(cls):
            lines.append(f"  # {f.metadata.get('help', '')}")
            value = yaml.safe_dump(f.default, default_flow_style=True).strip().removesuffix("...").strip()
            lines.append(f"  {f.name}: {value}")
    return "\n".join(lines) + "\n"


OPENAI_NAMES = {"n_epochs": "epochs", "batch_size": "batch_size", "learning_rate_multiplier": "learning_rate_multiplier"}


def openai_names(given: dict, path: str, problems: list[str]) -> dict:
    """OpenAI's fine-tuning hyperparameters as ours: `"auto"` means tailored chooses (None)."""
    out = {}
    for key, value in given.items():
        ours = OPENAI_NAMES.get(key, key)
        if value in ("auto", None) and key in OPENAI_NAMES:
            value = None
        elif key in OPENAI_NAMES and (isinstance(value, bool) or not isinstance(value, (int, float))):
            problems.append(f"{path}: {key}: expected a number or \"auto\", got {value!r}")
            continue
        if ours in out and out[ours] != value:
            problems.append(f"{path}: {key}: also set as {ours}; keep one")
        out[ours] = int(value) if ours in ("epochs", "batch_size") and value is not None else value
    return out


def from_yaml(path: str, flags: dict | None = None) -> dict:
    """Configs built from a YAML settings file, with `flags` (set on the command line) winning.

    Returns {"TrainConfig": ..., "DataConfig": ..., "EvalConfig": ..., "RunConfig": ...}.
    """
    import difflib

    import yaml

    try:
        with open(path, encoding="utf-8") as f:
            loaded = yaml.safe_load(f) or {}
    except (OSError, yaml.YAMLError) as e:
        raise TailoredError(f"{path}: cannot read settings ({e})") from None
    if not isinstance(loaded, dict) or not set(loaded) <= set(SECTIONS) | {"hyperparameters"}:
        raise TailoredError(f"{path}: top-level keys must be among {', '.join(SECTIONS)} (or OpenAI's "
                            "hyperparameters) — see `tailor config`")
    values, problems = {}, []
    openai = loaded.pop("hyperparameters", None) or {}
    if not isinstance(openai, dict):
        raise TailoredError(f"{path}: hyperparameters: expected a mapping (n_epochs, batch_size, "
                            "learning_rate_multiplier)")
    for section, cls in SECTIONS.items():
        names = [f.name for f in fields(cls)]
        given = loaded.get(section) or {}
        if not isinstance(given, dict):
            raise TailoredError(f"{path}: {section}: expected a mapping of settings")
        if section == "train":  # OpenAI's names, in their own section or among ours
            given = openai_names({**openai, **given}, path, problems)
        for key in given:
            if key not in names:
                close = difflib.get_close_matches(key, names, n=1)
                problems.append(f"{path}: {section}.{key}: unknown setting"
                                + (f" — did you mean {close[0]}?" if close else ""))
        values.update(given)
    if problems:
        raise SettingsError(problems)
    return build({**values, **(flags or {})}, *SECTIONS.values())
