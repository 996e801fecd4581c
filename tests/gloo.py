"""Run a function in 2 CPU processes joined by a gloo process group (for gather tests)."""

import tempfile

import torch.distributed as dist
import torch.multiprocessing as mp


def _worker(rank, world_size, init_file, fn, args, results):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    try:
        results[rank] = fn(rank, world_size, *args)
    finally:
        dist.destroy_process_group()


def run_in_processes(fn, *args, world_size=2):
    """``fn(rank, world_size, *args)`` in each process; returns the results by rank."""
    with tempfile.TemporaryDirectory() as directory, mp.Manager() as manager:
        results = manager.dict()
        mp.spawn(_worker, args=(world_size, f"{directory}/rendezvous", fn, args, results), nprocs=world_size)
        return [results[r] for r in range(world_size)]
