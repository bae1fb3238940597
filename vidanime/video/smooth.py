"""Temporal smoothing of per-track landmarks, so aligned crops do not jitter.

Filters behind :class:`SmoothConfig`:

* ``flow`` (default) — motion-compensated: each neighbouring frame's landmarks are first moved into frame t by the
  face's tracked frame-to-frame motion (:mod:`vidanime.video.motion`), then fitted as ``savgol`` does (order 0: their
  mean).  The detector's jitter averages away over a long window (25 frames) without lagging behind head motion,
  which ``savgol`` cannot do: on the talking-face clips the crops' jitter was most of the output's flicker.
* ``savgol`` — centred local polynomial fit (Savitzky–Golay on a regular grid; also correct on a track's
  first/last frames and across interpolated gaps, where the window is cut short).  ``flow`` and ``savgol`` need
  ``window // 2`` frames of look-ahead: the streaming processor delays its output by that many frames.
* ``one_euro`` — Casiez et al.'s One-Euro filter: causal (no latency), adaptive cut-off (smooths slow motion
  strongly, follows fast motion).  ``min_cutoff`` (Hz) lowers jitter, ``beta`` lowers lag.
* ``none`` — raw landmarks.

Landmarks are normalised by the track's face size before filtering so the strength does not depend on resolution.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np

if TYPE_CHECKING:
    import torch

from ..errors import ConfigError
from .track import forget_stale_tracks

__all__ = ["SmoothConfig", "OneEuroFilter", "local_poly_smooth", "savgol_smooth_sequence", "one_euro_sequence",
           "face_scale", "smooth_sequence", "motion_compensated_smooth", "LatentFilterConfig", "LatentFilter"]

METHODS = ("savgol", "flow", "one_euro", "none")


@dataclass
class SmoothConfig:
    """Landmark smoothing: ``method`` in flow|savgol|one_euro|none; flow/savgol ``window`` (odd frames) and polynomial
    ``order``; one_euro ``min_cutoff`` (Hz), ``beta`` and derivative cut-off ``d_cutoff`` (Hz) at the clip's ``fps``.
    The defaults (flow, 25 frames, order 0) were chosen from ``bench/bench_temporal.py`` on the talking-face clips."""

    method: str = "flow"
    window: int = 25
    order: int = 0
    min_cutoff: float = 1.0
    beta: float = 0.5
    d_cutoff: float = 1.0

    def check(self) -> "SmoothConfig":
        if self.method not in METHODS:
            raise ConfigError(f"smoothing method '{self.method}' is not one of {', '.join(METHODS)}")
        if self.window < 1 or self.window % 2 == 0:
            raise ConfigError(f"smoothing window={self.window} must be a positive odd number of frames")
        if not 0 <= self.order < max(self.window, 2):
            raise ConfigError(f"smoothing order={self.order} must be in [0, window) (window={self.window})")
        if self.min_cutoff <= 0 or self.d_cutoff <= 0 or self.beta < 0:
            raise ConfigError(
                f"one_euro needs min_cutoff > 0, d_cutoff > 0, beta >= 0, "
                f"got {self.min_cutoff}, {self.d_cutoff}, {self.beta}"
            )
        return self

    @property
    def lookahead(self) -> int:
        """Frames of future the filter needs (0 for causal filters)."""
        return self.window // 2 if self.method in ("savgol", "flow") else 0


def local_poly_smooth(times: np.ndarray, values: np.ndarray, t: float, order: int) -> np.ndarray:
    """Value at ``t`` of the least-squares polynomial of degree ``order`` through (times (N,), values (N, ...)).

    On a full regular centred window this equals the Savitzky–Golay filter; with fewer points the degree drops to
    ``N - 1`` at most.
    """
    times = np.asarray(times, np.float64)
    values = np.asarray(values, np.float64)
    n = len(times)
    deg = min(order, n - 1)
    if deg <= 0:
        return values.mean(axis=0)
    x = times - t
    vander = np.vander(x, deg + 1, increasing=True)  # column 0 = constant term = value at t
    coef, *_ = np.linalg.lstsq(vander, values.reshape(n, -1), rcond=None)
    return coef[0].reshape(values.shape[1:])


def savgol_smooth_sequence(values: np.ndarray, window: int = 9, order: int = 2) -> np.ndarray:
    """Centred Savitzky–Golay smoothing of a whole sequence (T, ...) with shortened windows at the ends."""
    values = np.asarray(values, np.float64)
    t_all = np.arange(len(values), dtype=np.float64)
    h = window // 2
    return np.stack([local_poly_smooth(t_all[max(0, i - h): i + h + 1], values[max(0, i - h): i + h + 1], i, order)
                     for i in range(len(values))])


class OneEuroFilter:
    """One-Euro filter over arrays (Casiez, Roussel, Vogel, CHI 2012); call with (value, timestamp in seconds)."""

    def __init__(self, min_cutoff: float | np.ndarray = 1.0, beta: float = 0.5, d_cutoff: float = 1.0) -> None:
        self.min_cutoff, self.beta, self.d_cutoff = min_cutoff, beta, d_cutoff
        self.x_prev: np.ndarray | None = None
        self.dx_prev: np.ndarray | None = None
        self.t_prev: float | None = None

    @staticmethod
    def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
        tau = 1.0 / (2 * math.pi * cutoff)
        return 1.0 / (1.0 + tau / dt)

    def __call__(self, x: np.ndarray, t: float) -> np.ndarray:
        x = np.asarray(x, np.float64)
        if self.x_prev is None or self.t_prev is None or t <= self.t_prev:
            self.x_prev, self.dx_prev, self.t_prev = x.copy(), np.zeros_like(x), t
            return x.copy()
        dt = t - self.t_prev
        dx = (x - self.x_prev) / dt
        a_d = self._alpha(self.d_cutoff, dt)
        dx_hat = a_d * dx + (1 - a_d) * self.dx_prev
        cutoff = self.min_cutoff + self.beta * np.abs(dx_hat)
        a = self._alpha(cutoff, dt)
        x_hat = a * x + (1 - a) * self.x_prev
        self.x_prev, self.dx_prev, self.t_prev = x_hat, dx_hat, t
        return x_hat


def one_euro_sequence(values: np.ndarray, fps: float, min_cutoff: float = 1.0, beta: float = 0.5,
                      d_cutoff: float = 1.0) -> np.ndarray:
    """One-Euro filter run causally over a sequence (T, ...) sampled at ``fps``."""
    f = OneEuroFilter(min_cutoff, beta, d_cutoff)
    return np.stack([f(v, i / fps) for i, v in enumerate(np.asarray(values, np.float64))])


def motion_compensated_smooth(landmarks: dict[int, np.ndarray], motions: dict[int, np.ndarray], t: int,
                              window: int, order: int = 0) -> np.ndarray:
    """Landmarks (5, 2) at frame ``t`` from ``landmarks[f]`` of the frames f within ``window // 2`` of t, each moved
    into frame t by chaining ``motions[i]`` (2, 3 similarity, frame i-1 → i), then fitted by a local polynomial of
    degree ``order`` at t.  Frames whose chain to t has a missing link are left out; ``landmarks[t]`` must exist."""
    from .align import apply_affine
    from .motion import maps_into

    maps = maps_into(motions, t, window // 2)
    times = sorted(f for f in maps if f in landmarks)
    values = [apply_affine(maps[f], landmarks[f]) for f in times]
    return local_poly_smooth(np.array(times, np.float64), np.stack(values), t, order)


def smooth_sequence(landmarks: np.ndarray, cfg: SmoothConfig, fps: float = 25.0,
                    motions: dict[int, np.ndarray] | None = None) -> np.ndarray:
    """Smooth a whole track's landmarks (T, 5, 2) offline (reference for the streaming path and for measurements).

    Values are normalised by the median eye-to-mouth size, so ``one_euro`` parameters are in face sizes per second.
    ``flow`` needs ``motions`` (frame i → similarity (2, 3) from frame i-1 to i, e.g. from
    :func:`vidanime.video.motion.face_motion`).
    """
    cfg.check()
    lm = np.asarray(landmarks, np.float64)
    if cfg.method == "none" or len(lm) < 2:
        return lm.copy()
    if cfg.method == "flow":
        if motions is None:
            raise ConfigError("smoothing method 'flow' needs the frames' motions (motions=...), e.g. from face_motion")
        by_frame = dict(enumerate(lm))
        return np.stack([motion_compensated_smooth(by_frame, motions, t, cfg.window, cfg.order)
                         for t in range(len(lm))])
    if cfg.method == "savgol":
        return savgol_smooth_sequence(lm, cfg.window, cfg.order)
    size = face_scale(lm)
    return one_euro_sequence(lm / size, fps, cfg.min_cutoff, cfg.beta, cfg.d_cutoff) * size


def face_scale(landmarks: np.ndarray) -> float:
    """Typical face size (pixels) of landmarks (..., 5, 2): median distance eye-midpoint → mouth-midpoint."""
    lm = np.asarray(landmarks, np.float64).reshape(-1, 5, 2)
    eye = (lm[:, 0] + lm[:, 1]) / 2
    mouth = (lm[:, 3] + lm[:, 4]) / 2
    return float(max(np.median(np.linalg.norm(mouth - eye, axis=-1)), 1e-3))


# ------------------------------------------------------------------------------------------------- latent filtering
@dataclass
class LatentFilterConfig:
    """Temporal filtering of each track's W+ codes at translate time (an addition to the paper): a causal One-Euro
    filter per code element, with its own minimum cut-off (Hz) for the structure codes (E_p's: pose, mouth, eyes —
    they must keep moving) and the appearance codes (E_s's: colours — nearly constant over a shot).  ``beta`` (per
    code unit per second) opens the filter when a code moves fast, so expressions are not frozen."""

    # Chosen with bench/bench_temporal.py on the five talking-face clips (README, "Steady video"): 4 Hz / 0.5 Hz / 0.1
    # keeps the mouth region moving (>= 0.57x the per-frame output's change) where 2 Hz / 0.3 Hz fell to 0.43x.
    structure_cutoff: float = 4.0
    appearance_cutoff: float = 0.5
    beta: float = 0.1
    d_cutoff: float = 1.0

    def check(self) -> "LatentFilterConfig":
        if min(self.structure_cutoff, self.appearance_cutoff, self.d_cutoff) <= 0 or self.beta < 0:
            raise ConfigError(f"latent filter needs cut-offs > 0 and beta >= 0, got {self.structure_cutoff}, "
                              f"{self.appearance_cutoff}, {self.d_cutoff}, {self.beta}")
        return self


class LatentFilter:
    """Per-track causal One-Euro filtering of W+ codes (N, L, D): ``filter(codes, track_ids)``.

    The first ``n_structure`` of the L codes use ``structure_cutoff``, the rest ``appearance_cutoff``.  A new track
    id starts unfiltered (tracks end at scene cuts, so cuts reset the filter); ``reset()`` between clips; ``fps`` is
    the clip's frame rate (frames are one ``1/fps`` apart within a track).
    """

    def __init__(self, n_structure: int, config: LatentFilterConfig | None = None, fps: float = 25.0) -> None:
        self.config = (config or LatentFilterConfig()).check()
        self.n_structure = int(n_structure)
        self.fps = float(fps)
        self._filters: dict[int, OneEuroFilter] = {}
        self._frames: dict[int, int] = {}

    def reset(self, fps: float | None = None) -> None:
        self._filters.clear()
        self._frames.clear()
        if fps is not None:
            if fps <= 0:
                raise ConfigError(f"fps={fps} must be > 0")
            self.fps = float(fps)

    def _cutoff(self, shape: tuple[int, ...]) -> np.ndarray:
        cut = np.full(shape, self.config.appearance_cutoff, np.float64)
        cut[: self.n_structure] = self.config.structure_cutoff
        return cut

    def __call__(self, codes: torch.Tensor, track_ids: Sequence[int]) -> torch.Tensor:
        import torch

        if codes.dim() != 3 or len(track_ids) != codes.shape[0]:
            raise ValueError(f"expected codes (N, L, D) for {len(track_ids)} track ids, got {tuple(codes.shape)}")
        x = codes.detach().float().cpu().numpy().astype(np.float64)
        out = np.empty_like(x)
        for i, tid in enumerate(track_ids):
            t = int(tid)
            f = self._filters.get(t)
            if f is None:
                c = self.config
                f = self._filters[t] = OneEuroFilter(self._cutoff(x.shape[1:]), c.beta, c.d_cutoff)
            n = self._frames.get(t, 0)
            out[i] = f(x[i], n / self.fps)
            self._frames[t] = n + 1
        forget_stale_tracks(track_ids, self._filters, self._frames)
        return torch.from_numpy(out).to(device=codes.device, dtype=codes.dtype)
