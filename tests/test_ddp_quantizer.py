"""Two real processes (gloo): quantizer statistics and dead-code restarts stay identical across ranks."""
import os
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from vqgan.quantize import QuantizerConfig, build_quantizer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker(rank: int, world: int, port: int, kind: str, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.manual_seed(0)  # same initial codebook on both ranks
    q = build_quantizer(QuantizerConfig(kind=kind, codebook_size=16, restart_threshold=0.5, decay=0.5), dim=2).train()
    torch.manual_seed(100 + rank)  # different data (and different local random draws) per rank
    for _ in range(6):
        z = torch.randn(2, 2, 3, 3) * 0.1 + rank  # few codes are hit: the rest die and restart
        q(z)
    # the quantizer's own count of restarted codes (rows moved by the EMA update are not restarts)
    torch.save({"codebook": q.embedding.weight.detach(), "counts": q.train_state.code_counts,
                "usage": q.usage.history, "restarted": int(q.train_state.restarts)}, f"{out_dir}/rank{rank}.pt")
    dist.destroy_process_group()


def run(kind: str, tmp_path) -> list[dict]:
    mp.spawn(worker, args=(2, free_port(), kind, str(tmp_path)), nprocs=2, join=True)
    return [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]


def test_restart_keeps_codebooks_identical_across_ranks_classic(tmp_path):
    a, b = run("classic", tmp_path)
    assert a["restarted"] > 0
    assert torch.equal(a["codebook"], b["codebook"]) and torch.equal(a["counts"], b["counts"])
    assert torch.equal(a["usage"], b["usage"])  # usage histograms are summed over ranks


def test_restart_keeps_codebooks_identical_across_ranks_ema(tmp_path):
    a, b = run("ema", tmp_path)
    assert a["restarted"] > 0
    assert torch.equal(a["codebook"], b["codebook"]) and torch.equal(a["counts"], b["counts"])
