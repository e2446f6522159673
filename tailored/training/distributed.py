"""Training under torchrun: this process's rank, the few collectives the loop needs, and the launch line.

No distributed layer of our own: torchrun starts the processes and rendezvous, torch.distributed
(gloo) moves the tensors. Every rank holds the whole (small) data set and the
same model; each runs its share of every global batch, and one all-reduce per step sums the
gradients, so a step's update is the same at any number of processes. Rank 0 alone logs, writes
checkpoints and evaluates. With FSDP (`shard`), the weights themselves are split among the ranks.
"""

from __future__ import annotations

import datetime as dt
import os
import shlex
import sys
from dataclasses import dataclass

import torch

from tailored.errors import TailoredError

# A collective that waits longer than this means a rank is gone: the job fails instead of hanging.
COLLECTIVE_TIMEOUT_S = 300


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def many(self) -> bool:
        return self.world > 1

    def share(self, rows: list) -> list:
        """This rank's rows of a global batch (every rank knows the whole batch)."""
        return rows[self.rank :: self.world]


SINGLE = Ranks()


class PeerFailed(TailoredError):
    """Another process of the job stopped (its own message says why); this one stops too."""


def _collective(collective, /, *args, **kwargs):
    """Run a torch.distributed collective. A peer that went away (gloo reports "Connection closed by
    peer", or a timeout) becomes one line here instead of a second traceback below the real error."""
    try:
        return collective(*args, **kwargs)
    except RuntimeError:
        raise PeerFailed("another training process stopped; its message is above") from None


def under_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def start() -> Ranks:
    """Join the process group torchrun set up (its environment variables), or run alone."""
    if not under_torchrun():
        return SINGLE
    import torch.distributed as dist

    if not dist.is_initialized():
        # gloo: tailored trains on the CPU today (nothing places a model on a GPU yet). NCCL belongs with
        # the day models move to GPUs, one per rank (LOCAL_RANK).
        dist.init_process_group("gloo", timeout=dt.timedelta(seconds=COLLECTIVE_TIMEOUT_S))
    return Ranks(dist.get_rank(), dist.get_world_size())


def stop() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def sum_gradients(params: list[torch.Tensor], ranks: Ranks) -> None:
    """Add up every rank's gradients in place, in one flat all-reduce.

    DDP would average (we want the sum: each rank's loss is already divided by the global batch's
    units) and needs every rank to run as many backward passes, which uneven micro-batches do not give.
    """
    if not ranks.many:
        return
    import torch.distributed as dist

    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1).float() for g in grads])
    _collective(dist.all_reduce, flat)
    offset = 0
    for p, g in zip(params, grads):
        p.grad = flat[offset : offset + g.numel()].view_as(g).to(g.dtype)
        offset += g.numel()


def sum_values(values: list[float], ranks: Ranks) -> list[float]:
    """The element-wise sum of `values` over all ranks (losses, token counts)."""
    if not ranks.many:
        return values
    import torch.distributed as dist

    tensor = torch.tensor(values, dtype=torch.float64)
    _collective(dist.all_reduce, tensor)
    return tensor.tolist()


def most(value: int, ranks: Ranks) -> int:
    """The largest `value` over all ranks."""
    if not ranks.many:
        return value
    import torch.distributed as dist

    tensor = torch.tensor([value])
    _collective(dist.all_reduce, tensor, op=dist.ReduceOp.MAX)
    return int(tensor.item())


def shard(model):
    """FSDP2 over the process group: weights, gradients and optimizer state split among the ranks.

    Each decoder layer is one unit (gathered just before it runs, freed after), the rest of the model
    another. Gradients are summed, not averaged: each rank's loss is already divided by the global
    batch's units, as in the unsharded loop.
    """
    from torch.distributed.fsdp import FSDPModule, fully_shard

    for layer in model.get_decoder().layers:
        fully_shard(layer)
    fully_shard(model)
    for module in model.modules():
        if isinstance(module, FSDPModule):  # gloo has no pre-scaled sum: a plain sum, divided by 1
            module.set_force_sum_reduction_for_comms(True)
            module.set_gradient_divide_factor(1.0)
    return model


def is_sharded(model) -> bool:
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


def barrier(ranks: Ranks) -> None:
    if ranks.many:
        import torch.distributed as dist

        _collective(dist.barrier)


def from_main(value, ranks: Ranks):
    """Rank 0's `value` on every rank (a run folder, a decision)."""
    if not ranks.many:
        return value
    import torch.distributed as dist

    box = [value]
    _collective(dist.broadcast_object_list, box, src=0)
    return box[0]


def cluster_command(args: list[str], processes: int, nnodes: int, name: str) -> str:
    """The torchrun line to run on each of `nnodes` machines (the same line everywhere)."""
    launcher = ["torchrun", f"--nnodes={nnodes}", f"--nproc-per-node={processes}", "--rdzv-backend=c10d",
                "--rdzv-endpoint=$MAIN_ADDR:29500"]  # left unquoted: each machine's shell fills in the address
    return " ".join(launcher) + " " + shlex.join([f"--rdzv-id=tailored-{name}", "--module", "tailored.cli", *args])


def run_local(args: list[str], processes: int) -> int:
    """Run `tailor ARGS` as `processes` processes here, through torchrun's launcher; the exit code.

    torchrun ends every process when one fails. The failing process has printed its own message (a
    user error as one line); the launcher's report of it, a traceback of its own, becomes one line too.
    """
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    try:
        run(get_args_parser().parse_args(["--standalone", f"--nproc-per-node={processes}", "--module",
                                          "tailored.cli", *args]))
    except ChildFailedError as e:
        rank, failure = e.get_first_failure()
        print(f"error training process {rank} of {processes} failed (exit code {failure.exitcode}); its message "
              "is above", file=sys.stderr)
        return 1
    return 0
