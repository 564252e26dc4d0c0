"""Test bounds of DRAW and its VAE baseline: the negative ELBO and the importance-weighted bound (nats per image),
sharded over DDP processes."""

from __future__ import annotations

import torch
import torch.distributed as dist
from paintrnn.agents.draw import DRAW
from paintrnn.agents.vae import VAE

from paintrnn.training import progress


@torch.no_grad()
def evaluate(
    model: DRAW | VAE,
    images: torch.Tensor,
    batch_size: int = 500,
    iwae_k: int = 0,
    seed: int = 0,
    show: bool = False,
    iwae_images: int | None = None,
) -> dict[str, float]:
    """Mean test negative ELBO (with its reconstruction and KL parts) and, if ``iwae_k``, the IWAE bound,
    in nats per image. The posterior noise comes from ``seed`` and leaves the caller's RNG untouched; under
    DDP each process takes a shard and the sums are all-reduced."""
    model.eval()
    device = next(model.parameters()).device
    rank, world = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
    shard = images[rank::world]
    n_iwae = images.shape[0] if iwae_images is None else min(iwae_images, images.shape[0])
    iwae_shard = images[:n_iwae][rank::world]
    sums = torch.zeros(5, dtype=torch.float64, device=device)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed + rank)
        batches = range(0, shard.shape[0], batch_size)
        for i in progress(batches, enabled=show, desc="eval", leave=False):
            x = shard[i : i + batch_size].to(device)
            out = model(x)
            sums[0] += (out.recon + out.kl).sum().double()
            sums[1] += out.recon.sum().double()
            sums[2] += out.kl.sum().double()
        if iwae_k:
            kb = max(1, batch_size // iwae_k)
            for i in progress(range(0, iwae_shard.shape[0], kb), enabled=show, desc=f"iwae k={iwae_k}", leave=False):
                x = iwae_shard[i : i + kb].to(device)
                sums[3] += model.iwae_nll(x, iwae_k).sum().double()
                out = model(x)
                sums[4] += (out.recon + out.kl).sum().double()  # the ELBO on the same images, for comparison
    if dist.is_initialized():
        dist.all_reduce(sums)
    n = images.shape[0]
    result = {"test_nelbo": sums[0].item() / n, "test_recon": sums[1].item() / n, "test_kl": sums[2].item() / n}
    if iwae_k:
        result[f"test_iwae{iwae_k}"] = sums[3].item() / n_iwae
        result["iwae_images"] = n_iwae
        result["test_nelbo_iwae_images"] = sums[4].item() / n_iwae
    return result
