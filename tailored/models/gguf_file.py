"""Write a llama-architecture transformers model as a GGUF file that llama.cpp and Ollama read.

The tokenizer, hyperparameters and everything else but the weights and the chat template are copied
from the base's own GGUF (the bundled bases ship as GGUF), so llama.cpp sees exactly the vocabulary the
run was trained with. Used by `tailor export --format gguf` and by the llama.cpp decode engine.
"""

from __future__ import annotations

from pathlib import Path

import torch

from tailored import atomic
from tailored.errors import TailoredError
from tailored.models.bases import ResolvedBase

GGUF_TYPES = ("f16", "q8_0", "f32")
FILE_TYPES = {"f16": "MOSTLY_F16", "q8_0": "MOSTLY_Q8_0", "f32": "ALL_F32"}


def _permute(w: torch.Tensor, heads: int) -> torch.Tensor:
    # llama.cpp stores Q and K rotary halves interleaved; transformers undoes this when it reads GGUF.
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def default_gguf_path(run: Path, kind: str = "f16") -> Path:
    """Where `tailor export --format gguf` writes a run, and where the llama.cpp engine looks for it."""
    return run / "export" / f"{run.parent.name}-{run.name}.{kind}.gguf"


def gguf_architecture(base: ResolvedBase) -> str:
    """The architecture a base that came as GGUF declares in its header ("llama", "gemma3", ...)."""
    import gguf

    return gguf.GGUFReader(str(Path(base.path) / base.gguf_file)).fields["general.architecture"].contents()


def check_gguf_base(base: ResolvedBase) -> Path:
    """The base's own GGUF file, or a TailoredError saying why this base cannot be written as GGUF."""
    if not base.gguf_file:
        raise TailoredError(f"GGUF export needs a base that came as GGUF (smollm2-135m); '{base.name}' did not — "
                            "export --format merged and convert it with llama.cpp's convert_hf_to_gguf.py")
    if (arch := gguf_architecture(base)) != "llama":
        raise TailoredError(f"GGUF export supports llama-architecture bases; this base is {arch}")
    return Path(base.path) / base.gguf_file


def write_gguf(base: ResolvedBase, model, chat_template: str, out: Path, kind: str = "f16") -> Path:
    """`model` (a plain transformers model, adapters already merged) as a GGUF file at `out`, atomically."""
    import gguf
    import numpy as np

    if kind not in GGUF_TYPES:
        raise TailoredError(f"--gguf-type {kind}: use one of {', '.join(GGUF_TYPES)}")
    reader, arch = gguf.GGUFReader(str(check_gguf_base(base))), "llama"
    cfg = model.config
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, cfg.num_hidden_layers)
    state = {k: v.detach().float() for k, v in model.state_dict().items()}
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic.atomic_path(out) as tmp:
        writer = gguf.GGUFWriter(str(tmp), arch)
        for key, field in reader.fields.items():
            if key.startswith("GGUF.") or key in ("general.architecture", "general.file_type",
                                                  "general.quantization_version", "tokenizer.chat_template"):
                continue
            main = field.types[0]
            if main == gguf.GGUFValueType.ARRAY:
                writer.add_key_value(key, field.contents(), main, sub_type=field.types[-1])
            else:
                writer.add_key_value(key, field.contents(), main)
        writer.add_file_type(getattr(gguf.LlamaFileType, FILE_TYPES[kind]))
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
        writer.add_chat_template(chat_template)  # the run's template, not the base's
        for hf_name, tensor in state.items():
            if hf_name == "lm_head.weight" and getattr(cfg, "tie_word_embeddings", False):
                continue
            name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
            if name is None:
                raise TailoredError(f"no GGUF name for tensor {hf_name}")
            if hf_name.endswith("q_proj.weight"):
                tensor = _permute(tensor, cfg.num_attention_heads)
            elif hf_name.endswith("k_proj.weight"):
                tensor = _permute(tensor, cfg.num_key_value_heads)
            data = tensor.numpy()
            if data.ndim == 1 or kind == "f32":  # norms stay float32, as llama.cpp expects
                writer.add_tensor(name, data.astype(np.float32))
            elif kind == "q8_0":
                writer.add_tensor(name, gguf.quants.quantize(data, gguf.GGMLQuantizationType.Q8_0),
                                  raw_dtype=gguf.GGMLQuantizationType.Q8_0)
            else:
                writer.add_tensor(name, data.astype(np.float16))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
    return out
