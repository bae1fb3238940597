"""FaceBank aggregation (paper §4.3, Eq. 11–14): pull a predicted W+ code towards the generator's own latent manifold.

For a code w, find its k nearest bank codes (Euclidean, Eq. 11), take the sum-to-one least-squares combination of
them closest to w (the anchor, Eq. 12–13) and blend ``w_agg = α·w + (1 − α)·w_anchor`` (Eq. 14; α = 1 keeps w).
Optionally some W+ layers (``anchor_layers``) take the anchor alone (α 0 there; an addition to the paper, measured
for the bundled model: README "Keeping the person").

Storage: the paper builds its bank from the mapping network, whose W+ codes are one W vector repeated over the
n_latent layers.  We store those as W, (N, 512) — 14x smaller than (N, 14, 512); 50,000 codes are 100 MB in fp32 or
50 MB in fp16.  Search and weights stay exact for the W+ problem: for a bank code b repeated over L layers,
``||w − b||² = L·||mean_l(w) − b||² + const(w)``, so ranks and the least-squares weights computed from the layer mean
are those of the full W+ problem.  Banks of true W+ codes, (N, L, 512), are supported as well (space "w+").

File format (a vidanime checkpoint): ``format="vidanime.facebank"``, ``config`` = :class:`FaceBankConfig`,
``state_dict = {"codes": (N, 512) or (N, L, 512)}``.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from ..errors import CheckpointError, VidanimeError

logger = logging.getLogger(__name__)

__all__ = [
    "FaceBankConfig", "FaceBank", "knn", "knn_reference", "anchor_weights", "build_facebank",
    "FACEBANK_FORMAT",
]

FACEBANK_FORMAT = "vidanime.facebank"


@dataclass
class FaceBankConfig:
    """How a bank was made: code space, number of W+ layers it serves, style width, seed, generator checkpoint."""

    space: Literal["w", "w+"] = "w"
    n_latent: int = 14
    style_dim: int = 512
    n_codes: int = 50_000
    seed: int = 0
    generator: str = ""
    dtype: Literal["float32", "float16"] = "float32"


def knn_reference(queries: torch.Tensor, bank: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Brute force kNN, one query at a time in float64: (B, D), (N, D) → distances (B, k), indices (B, k)."""
    out_d, out_i = [], []
    bank64 = bank.double()
    for q in queries.double():
        d = ((bank64 - q) ** 2).sum(1).sqrt()
        dist, idx = torch.topk(d, k, largest=False, sorted=True)
        out_d.append(dist)
        out_i.append(idx)
    return torch.stack(out_d).to(queries.dtype), torch.stack(out_i)


def knn(
    queries: torch.Tensor,
    bank: torch.Tensor,
    k: int = 10,
    bank_chunk: int = 8192,
    query_chunk: int = 1024,
    bank_sq_norms: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact batched kNN (Euclidean): (B, D) queries, (N, D) bank → sorted distances (B, k), indices (B, k).

    Chunked squared distances in matrix-multiply form, ``|q|² − 2 q·b + |b|²`` (what ``torch.cdist`` does for large
    inputs, but with the bank norms ``bank_sq_norms`` (N,) computed once; cdist recomputes them and takes a slow path
    for a single query), keep the top candidates per bank chunk; the merged candidates (2k + 8 per query) are then
    re-ranked with directly computed distances, so rounding in the matrix-multiply form cannot change the answer
    except between near-exact ties.
    """
    n = bank.shape[0]
    if not 1 <= k <= n:
        raise VidanimeError(f"k={k}: expected 1..{n} (the bank size)")
    if queries.ndim != 2 or queries.shape[1] != bank.shape[1]:
        raise VidanimeError(f"queries have shape {tuple(queries.shape)}: expected (B, {bank.shape[1]})")
    bank = bank.to(queries.dtype)
    if bank_sq_norms is None:
        bank_sq_norms = bank.square().sum(1)
    m = min(n, 2 * k + 8)
    all_d, all_i = [], []
    for q0 in range(0, queries.shape[0], query_chunk):
        q = queries[q0 : q0 + query_chunk]
        cand_d, cand_i = [], []
        for b0 in range(0, n, bank_chunk):
            chunk = bank[b0 : b0 + bank_chunk]
            # |n|² − 2 q·n: the missing + |q|² is rank-neutral
            d2 = torch.addmm(bank_sq_norms[None, b0 : b0 + bank_chunk], q, chunk.T, alpha=-2.0)
            dv, di = torch.topk(d2, min(m, d2.shape[1]), dim=1, largest=False)
            cand_d.append(dv)
            cand_i.append(di + b0)
        cd, ci = torch.cat(cand_d, 1), torch.cat(cand_i, 1)
        if cd.shape[1] > m:
            _, sel = torch.topk(cd, m, dim=1, largest=False)
            ci = torch.gather(ci, 1, sel)  # (b, m) candidate indices
        exact = (bank[ci] - q[:, None, :]).square().sum(-1).sqrt()  # (b, m)
        dv, order = torch.topk(exact, k, dim=1, largest=False, sorted=True)
        all_d.append(dv)
        all_i.append(torch.gather(ci, 1, order))
    return torch.cat(all_d), torch.cat(all_i)


def anchor_weights(queries: torch.Tensor, neighbours: torch.Tensor, ridge: float = 1e-10) -> torch.Tensor:
    """Sum-to-one least-squares weights (Eq. 13): (B, D) queries, (B, k, D) neighbours → β (B, k), rows sum to 1.

    Minimises ||q − Σ β_i n_i||² s.t. Σ β_i = 1, i.e. βᵀGβ with the local Gram matrix G_ij = (q − n_i)·(q − n_j).
    The KKT system [[G + εI, 1], [1ᵀ, 0]] [β; λ] = [0; 1] has the closed form β = z / 1ᵀz with (G + εI) z = 1, solved
    here by Cholesky in float64 (G + εI is symmetric positive definite).  The ridge ε = ridge·trace(G)/k (plus a floor)
    keeps it so for duplicate neighbours or k > D; a query equal to a neighbour gets weight 1 on it.  (Cholesky, not
    LU: torch 2.14's batched CPU LU returns invalid pivots from about 160×160 on with more than one thread, so
    ``torch.linalg.solve`` of the bordered system failed for k ≥ ~160.)
    """
    b, k, _ = neighbours.shape
    diff = (queries[:, None, :] - neighbours).double()  # (B, k, D)
    gram = diff @ diff.transpose(1, 2)  # (B, k, k)
    if k == 1:
        return torch.ones(b, 1, dtype=queries.dtype, device=queries.device)
    trace = gram.diagonal(dim1=1, dim2=2).sum(-1)  # (B,)
    eps = ridge * trace / k + 1e-300
    eye = torch.eye(k, dtype=gram.dtype, device=gram.device)
    ones = torch.ones(b, k, 1, dtype=gram.dtype, device=gram.device)
    chol, info = torch.linalg.cholesky_ex(gram + eps[:, None, None] * eye)
    if bool(info.any()):  # G + εI is positive definite in exact arithmetic; only non-finite codes get here
        raise VidanimeError("FaceBank anchor weights: the neighbours' Gram matrix could not be factorised "
                            "(non-finite latent codes?)")
    z = torch.cholesky_solve(ones, chol)[..., 0]  # (B, k)
    beta = z / z.sum(-1, keepdim=True)
    # Exact hits: a neighbour equal to the query is its own best anchor (the ridge would otherwise blur it slightly).
    zero = gram.diagonal(dim1=1, dim2=2) == 0  # (B, k): neighbours equal to the query
    hit = zero.any(-1)
    if hit.any():
        first = zero[hit].double().argmax(-1)
        beta[hit] = torch.nn.functional.one_hot(first, k).double()
    beta = beta / beta.sum(-1, keepdim=True)
    return beta.to(queries.dtype)


class FaceBank:
    """A set of generator latent codes with kNN search and Eq. 11–14 aggregation; not an nn.Module (no gradients).

    ``codes``: (N, style_dim) W codes (space "w", served as W+ by repetition) or (N, n_latent, style_dim) W+ codes.
    """

    def __init__(self, codes: torch.Tensor, config: FaceBankConfig | None = None):
        if codes.ndim == 2:
            space = "w"
        elif codes.ndim == 3:
            space = "w+"
        else:
            raise VidanimeError(
                f"FaceBank codes have shape {tuple(codes.shape)}: expected (N, 512) or (N, n_latent, 512)"
            )
        config = config or FaceBankConfig(
            space=space,
            n_latent=codes.shape[1] if space == "w+" else 14,
            style_dim=codes.shape[-1],
            n_codes=codes.shape[0],
        )
        if config.space != space:
            raise VidanimeError(f"FaceBank config says space '{config.space}' "
                                f"but codes have shape {tuple(codes.shape)}")
        self.config = config
        self.codes = codes
        self._flat = codes.float().reshape(codes.shape[0], -1)
        self._sq = self._flat.square().sum(1)

    def __len__(self) -> int:
        return self.codes.shape[0]

    @property
    def device(self) -> torch.device:
        return self._flat.device

    def to(self, device: Any) -> "FaceBank":
        """Move the (float32 working copy of the) codes to ``device``; returns self."""
        self._flat = self._flat.to(device)
        self._sq = self._sq.to(device)
        return self

    def check_codes(self, w: torch.Tensor) -> None:
        """Raise unless w is (B, n_latent, style_dim) matching this bank."""
        c = self.config
        if w.ndim != 3 or w.shape[-1] != c.style_dim or (c.space == "w+" and w.shape[1] != c.n_latent):
            want = f"(B, {c.n_latent if c.space == 'w+' else 'n_latent'}, {c.style_dim})"
            raise VidanimeError(f"latent codes have shape {tuple(w.shape)}: expected {want} for this FaceBank")

    def _queries(self, w: torch.Tensor) -> torch.Tensor:
        # Space "w": the layer mean ranks and weights bank codes exactly as the full W+ distance does (module doc).
        return (w.mean(1) if self.config.space == "w" else w.reshape(w.shape[0], -1)).float()

    def search(self, w: torch.Tensor, k: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
        """kNN of W+ codes (B, L, D) in the bank (Eq. 11): indices (B, k) nearest first, and W+ distances (B, k)."""
        self.check_codes(w)
        q = self._queries(w.to(self.device))
        dist, idx = knn(q, self._flat, k, bank_sq_norms=self._sq)
        if self.config.space == "w":  # distance between w and the repeated bank code, up to the w-only constant
            spread = ((w.to(self.device).float() - q[:, None]) ** 2).sum((1, 2))
            dist = (w.shape[1] * dist**2 + spread[:, None]).clamp_min(0).sqrt()
        return idx, dist

    def anchor(self, w: torch.Tensor, k: int = 10) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Anchor codes (Eq. 12–13): w (B, L, D) → (w_anchor (B, L, D), weights (B, k), neighbour indices (B, k))."""
        self.check_codes(w)
        q = self._queries(w.to(self.device))
        _, idx = knn(q, self._flat, k, bank_sq_norms=self._sq)
        neigh = self._flat[idx]  # (B, k, D')
        beta = anchor_weights(q, neigh)
        anchor = (beta.double()[:, :, None] * neigh.double()).sum(1).float()
        anchor = anchor[:, None, :].expand(-1, w.shape[1], -1) if self.config.space == "w" else anchor.view_as(w)
        return anchor.to(device=w.device, dtype=w.dtype), beta.to(w.device), idx.to(w.device)

    def aggregate(self, w: torch.Tensor, alpha: float, k: int = 10,
                  anchor_layers: tuple[int, ...] | list[int] = ()) -> torch.Tensor:
        """Eq. 14: ``α·w + (1 − α)·w_anchor`` for W+ codes (B, L, D); α in [0, 1], α = 1 returns w unchanged (the bank
        is off).  ``anchor_layers``: W+ layer indices (0-based; negative ones count from the finest layer, -1 is the
        last, so one recipe fits generators of any size) that take ``w_anchor`` alone whenever α < 1."""
        if not 0.0 <= float(alpha) <= 1.0:
            raise VidanimeError(f"FaceBank alpha={alpha}: expected a number in [0, 1]")
        n = w.shape[1]
        given = sorted({int(i) for i in anchor_layers})
        if given and not -n <= given[0] <= given[-1] < n:
            raise VidanimeError(f"FaceBank anchor_layers={given}: expected indices in {-n}..{n - 1}")
        layers = sorted({i % n for i in given})
        if alpha == 1.0:
            return w
        anchor, _, _ = self.anchor(w, k)
        out = alpha * w + (1.0 - alpha) * anchor
        if layers:
            out[:, layers] = anchor[:, layers]
        return out

    # ---- files ---------------------------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike, dtype: str | None = None) -> Path:
        """Write the bank atomically as a ``vidanime.facebank`` checkpoint (fp16 storage with dtype="float16")."""
        from dataclasses import replace

        from ..checkpoint import save_checkpoint

        dtype = dtype or self.config.dtype
        if dtype not in ("float32", "float16"):
            raise VidanimeError(f"FaceBank dtype={dtype!r}: expected 'float32' or 'float16'")
        codes = self.codes.detach().cpu().to(getattr(torch, dtype))
        config = replace(self.config, dtype=dtype, n_codes=len(self))
        return save_checkpoint(path, format=FACEBANK_FORMAT, config=config, state_dict={"codes": codes})

    @classmethod
    def from_checkpoint(cls, ckpt: dict) -> "FaceBank":
        """Build from a loaded ``vidanime.facebank`` checkpoint dict."""
        from ..config import config_from_dict

        if ckpt.get("format") != FACEBANK_FORMAT:
            raise CheckpointError(
                f"checkpoint format '{ckpt.get('format')}' is not a FaceBank: expected '{FACEBANK_FORMAT}'"
            )
        config = config_from_dict(ckpt["config"], FaceBankConfig, source="facebank config")
        codes = ckpt["state_dict"].get("codes")
        if codes is None:
            raise CheckpointError("FaceBank checkpoint has no 'codes' tensor in its state_dict")
        return cls(codes, config)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "FaceBank":
        """Read a bank written by :meth:`save` (``weights_only=True``); another format is a CheckpointError."""
        from ..checkpoint import load_checkpoint

        return cls.from_checkpoint(load_checkpoint(path, format=FACEBANK_FORMAT))


@torch.no_grad()
def build_facebank(
    generator: torch.nn.Module,
    n_codes: int = 50_000,
    seed: int = 0,
    batch_size: int = 1000,
    generator_name: str = "",
) -> FaceBank:
    """Sample ``n_codes`` W codes from the generator's mapping network (seeded z ~ N(0, I), drawn on the CPU).

    z is drawn in fixed chunks of 1,000 from one seeded CPU generator, so the bank does not depend on ``batch_size``
    or the device.  Returns a space-"w" bank serving ``generator.n_latent`` W+ layers.
    """
    from tqdm import tqdm

    if n_codes < 1:
        raise VidanimeError(f"FaceBank size {n_codes}: expected a positive number of codes")
    device = next(generator.parameters()).device
    rng = torch.Generator().manual_seed(int(seed))
    style_dim = int(generator.style_dim)
    z = torch.cat([torch.randn(min(1000, n_codes - i), style_dim, generator=rng) for i in range(0, n_codes, 1000)])
    codes = []
    for i in tqdm(range(0, n_codes, batch_size), desc="facebank", unit="batch", disable=n_codes <= batch_size):
        codes.append(generator.mapping(z[i : i + batch_size].to(device)).float().cpu())
    config = FaceBankConfig(
        space="w", n_latent=int(generator.n_latent), style_dim=style_dim, n_codes=n_codes, seed=int(seed),
        generator=generator_name,
    )
    logger.info("built FaceBank of %d codes (seed %d)", n_codes, seed)
    return FaceBank(torch.cat(codes), config)
