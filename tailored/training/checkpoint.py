"""Checkpoints that survive kill -9: trainable weights, optimizer, scheduler, RNG and data position.

Each checkpoint is a folder written beside its final name, fsynced and renamed into place; its
COMPLETE marker is written last. Resume only ever picks a folder that has the marker.

Weights and optimizer state are stored whole and keyed by parameter name, whatever the process
count or sharding (FSDP), so a checkpoint written one way resumes any other way.
"""

from __future__ import annotations

import json
import random
import re
import shutil
from pathlib import Path

import torch

from tailored import atomic

MARKER = "COMPLETE"
_STEP = re.compile(r"^step-(\d+)$")


def trainable_state(model) -> dict[str, torch.Tensor]:
    """A copy of the trainable weights (this rank's shards, under FSDP)."""
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def whole(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`state` with FSDP shards gathered into whole tensors. Under FSDP every rank must call this."""
    from torch.distributed.tensor import DTensor

    return {k: v.full_tensor() if isinstance(v, DTensor) else v for k, v in state.items()}


def load_trainable(model, state: dict[str, torch.Tensor]) -> None:
    """Copy weights into the model's parameters; whole tensors are cut into shards where the model is sharded."""
    from torch.distributed.tensor import DTensor, distribute_tensor

    named = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in state.items():
            param = named[name]
            if isinstance(param, DTensor) and not isinstance(value, DTensor):
                value = distribute_tensor(value, param.device_mesh, param.placements)
            param.copy_(value)


def optimizer_state(optimizer) -> dict:
    """The optimizer's own state dict (keyed by parameter index) with FSDP shards gathered whole."""
    from torch.distributed.tensor import DTensor

    saved = optimizer.state_dict()
    state = {i: {k: v.full_tensor() if isinstance(v, DTensor) else v for k, v in entry.items()}
             for i, entry in saved["state"].items()}
    return {"state": state, "param_groups": saved["param_groups"]}


def load_optimizer_state(optimizer, saved: dict) -> None:
    """`optimizer_state` back into an optimizer, cut into shards where its parameters are sharded."""
    from torch.distributed.tensor import DTensor, distribute_tensor

    params = [p for group in optimizer.param_groups for p in group["params"]]
    for i, entry in saved["state"].items():
        param = params[int(i)]
        if isinstance(param, DTensor):
            saved["state"][i] = {k: distribute_tensor(v, param.device_mesh, param.placements)
                                 if torch.is_tensor(v) and v.shape == param.shape else v for k, v in entry.items()}
    optimizer.load_state_dict(saved)


def snapshot(model, optimizer, best: dict[str, torch.Tensor]) -> dict:
    """Everything of the training state that lives in tensors, whole. Under FSDP every rank must call this."""
    return {"trainable": whole(trainable_state(model)), "best": whole(best), "optimizer": optimizer_state(optimizer)}


def rng_state() -> dict:
    import numpy as np

    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {"python": random.getstate(), "torch": torch.get_rng_state(),
            "numpy": [kind, torch.from_numpy(keys.astype("int64")), pos, has_gauss, gauss]}


def set_rng_state(state: dict) -> None:
    import numpy as np

    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype("uint32"), pos, has_gauss, gauss))


def save(folder: Path, step: int, snap: dict, scheduler, progress: dict, keep: int = 2) -> Path:
    """Write checkpoint `step-N` from a `snapshot` under `folder`; keep only the newest `keep` complete ones."""
    from safetensors.torch import save_file

    target = folder / f"step-{step:07d}"
    with atomic.atomic_dir(target) as tmp:
        save_file({k: v.contiguous() for k, v in snap["trainable"].items()}, str(tmp / "trainable.safetensors"))
        save_file({k: v.contiguous() for k, v in snap["best"].items()}, str(tmp / "best.safetensors"))
        torch.save({"optimizer": snap["optimizer"], "scheduler": scheduler.state_dict(), "rng": rng_state()},
                   tmp / "state.pt")
        atomic.write_json(tmp / "progress.json", progress)
    atomic.write_text(target / MARKER, f"{step}\n")
    for old in complete(folder)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return target


def complete(folder: Path) -> list[Path]:
    """Finished checkpoints, oldest first; half-written ones (no marker) are ignored."""
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _STEP.match(p.name)) and (p / MARKER).exists()]
    return [p for _, p in sorted(found)]


def load(path: Path, model, optimizer, scheduler) -> tuple[dict, dict[str, torch.Tensor]]:
    """Restore everything `save` wrote into the live objects; return the progress and the best weights."""
    from safetensors.torch import load_file

    load_trainable(model, load_file(str(path / "trainable.safetensors")))
    # Our own file, and weights_only: nothing in it can run code when it is read.
    state = torch.load(path / "state.pt", weights_only=True)
    load_optimizer_state(optimizer, state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    set_rng_state(state["rng"])
    progress = json.loads((path / "progress.json").read_text(encoding="utf-8"))
    return progress, load_file(str(path / "best.safetensors"))


def save_progress(folder: Path, snap: dict, scheduler, result, step: int, next_batch: tuple[int, int],
                  bad_evals: int) -> Path:
    """A checkpoint of a training loop: where the next batch is (epoch, index) and the run so far."""
    return save(folder, step, snap, scheduler,
                {"step": step, "epoch_index": next_batch[0], "batch_index": next_batch[1], "bad_evals": bad_evals,
                 "history": result.history, "best_valid_loss": result.best_valid_loss,
                 "best_step": result.best_step, "trained_tokens": result.trained_tokens})


def resume(folder: Path, model, optimizer, scheduler, result):
    """Restore the newest complete checkpoint into the live objects and `result` (a FitResult).

    Returns ((step, epoch_index, batch_index, bad_evals), best weights), or None when there is none.
    """
    found = complete(folder)
    if not found:
        return None
    saved, best = load(found[-1], model, optimizer, scheduler)
    result.history, result.best_valid_loss, result.best_step = saved["history"], saved["best_valid_loss"], \
        saved["best_step"]
    result.trained_tokens, result.resumed_from = saved["trained_tokens"], saved["step"]
    return (saved["step"], saved["epoch_index"], saved["batch_index"], saved["bad_evals"]), best
