"""Domain datasets for StyleAnime training: images with parsing maps, for the target and the source domain.

Layouts of ``DomainDataConfig.root`` (``layout: auto`` picks the first that fits):

* ``pairs`` — ``images/<stem>.*`` + ``masks/<stem>.png`` with matching stems, or a ``pairs.csv`` (id,image,mask), read
  through :mod:`vidanime.data.parsing` (Danbooru-Parsing, pseudo-labelled anime, ../shared/assets/faces);
* ``celebamask_hq`` — the CelebAMask-HQ release: ``CelebA-HQ-img/<n>.jpg`` and per-part binary masks
  ``CelebAMask-HQ-mask-anno/<k>/<n:05d>_<part>.png``, composited in CelebAMask order (later parts win, as in the
  release's ``g_mask.py``);
* ``images`` — a plain image folder (recursive); the parsing is predicted by a ``vidanime.parser`` checkpoint
  (``parser:``) when the dataset is built: pseudo-labels, e.g. for anime, where no annotations ship.

Masks are label-id PNGs in the order ``mask_labels`` and are remapped to the model's label set; pixels marked 255
(ignore) become ``ignore_to`` (background by default) since the parsing encoder needs a label everywhere.  Everything is
decoded once (uint8, at the model size) so bad files are found before training starts: a corrupt image, an image without
mask or a mask with ids outside its label set raises a :class:`MediaError` naming the file, or with ``skip_bad`` is
logged and skipped.  Images are resized with antialiasing, masks with nearest neighbour; the horizontal flip also swaps
left/right labels.  Batches are drawn by :class:`ShardedSampler`, which also shards them across DDP processes.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np
import torch

from .. import labels as L
from ..errors import ConfigError, MediaError
from .parsing import (
    IGNORE_INDEX,
    IMAGE_EXTS,
    flip_mask,
    list_pairs,
    read_image_rgb,
    read_mask,
    remap_mask,
    resize_image,
    split_ids,
)

logger = logging.getLogger(__name__)

__all__ = ["DomainDataConfig", "DomainDataset", "ShardedSampler", "detect_layout", "list_celebamask_hq",
           "composite_celebamask_parts"]

CELEBAMASK_HQ_IMAGES = "CelebA-HQ-img"
CELEBAMASK_HQ_ANNO = "CelebAMask-HQ-mask-anno"


@dataclass
class DomainDataConfig:
    """One domain's training data (the ``target:`` / ``source:`` sections of a StyleAnime training config)."""

    root: str = ""
    layout: Literal["auto", "pairs", "celebamask_hq", "images"] = "auto"
    mask_labels: Literal["celebamask", "bisenet", "danbooru"] = "bisenet"  # label order of the mask files
    parser: str = ""  # layout "images": vidanime.parser checkpoint (path or bundled name) predicting the parsing
    parser_batch: int = 16
    limit: int | None = None  # first N sorted items (None = all)
    flip: bool = True  # random horizontal flip with left/right label swap
    skip_bad: bool = False  # log and skip unreadable / unmatched / out-of-range files instead of stopping
    ignore_to: int = 0  # label written where a mask says 255 (ignore)
    holdout: float = 0.0  # pair layouts: leave out this fraction of the ids (split_ids, as the parser's val split)
    holdout_seed: int = 0  # seed of that split (parser configs: data.split_seed)
    # layout "images": decode and parse each image the first time a batch asks for it, not all of them up front (the
    # per-clip fine-tune draws a few hundred of its 2,000 L_base images; parsing all took 14 s of a 35-s run)
    lazy: bool = False


# ------------------------------------------------------------------------------------------------------------ listing
def detect_layout(root: Path) -> str:
    """The layout of ``root`` (see module doc); an empty or missing folder raises :class:`ConfigError`."""
    if not root.is_dir():
        raise ConfigError(f"dataset folder not found: {root}")
    if (root / "pairs.csv").is_file() or ((root / "images").is_dir() and (root / "masks").is_dir()):
        return "pairs"
    if (root / CELEBAMASK_HQ_IMAGES).is_dir() and (root / CELEBAMASK_HQ_ANNO).is_dir():
        return "celebamask_hq"
    return "images"


def _list_pair_folders(root: Path, skip_bad: bool) -> list[tuple[str, Path, Path]]:
    """Pairs of an images/ + masks/ folder (or pairs.csv); an image without a mask is an error unless ``skip_bad``."""
    img_dir, mask_dir = root / "images", root / "masks"
    if not (root / "pairs.csv").is_file() and img_dir.is_dir() and mask_dir.is_dir():
        masks = {p.stem for p in mask_dir.iterdir() if p.suffix.lower() == ".png"}
        images = sorted(p for p in img_dir.iterdir() if p.suffix.lower() in IMAGE_EXTS)
        if not images:
            raise ConfigError(f"{img_dir}: no images ({', '.join(IMAGE_EXTS)}) found")
        unmatched = [p for p in images if p.stem not in masks]
        if unmatched and not skip_bad:
            raise MediaError(f"image {unmatched[0]} has no mask {mask_dir / (unmatched[0].stem + '.png')} "
                             f"({len(unmatched)} images unmatched; --skip-bad skips them)")
    return list_pairs(root)


def list_celebamask_hq(root: Path) -> list[tuple[str, Path, Path]]:
    """(id, image, annotation folder) of a CelebAMask-HQ release folder, sorted by numeric id."""
    img_dir, anno = root / CELEBAMASK_HQ_IMAGES, root / CELEBAMASK_HQ_ANNO
    images = sorted((p for p in img_dir.iterdir() if p.suffix.lower() in IMAGE_EXTS),
                    key=lambda p: (len(p.stem), p.stem))
    if not images:
        raise ConfigError(f"{img_dir}: no images found")
    return [(p.stem, p, anno) for p in images]


def composite_celebamask_parts(anno: Path, image_id: str) -> np.ndarray:
    """Label map (H, W) uint8 in CelebAMask order from the per-part binary PNGs of image ``image_id``."""
    try:
        n = int(image_id)
    except ValueError:
        raise MediaError(f"CelebAMask-HQ image id '{image_id}' is not a number") from None
    folder = anno / str(n // 2000)
    mask: np.ndarray | None = None
    found = 0
    for label, name in enumerate(L.CELEBAMASK):
        if label == 0:
            continue
        part = folder / f"{n:05d}_{name}.png"
        if not part.is_file():
            continue
        arr = read_mask(part)
        if mask is None:
            mask = np.zeros(arr.shape, dtype=np.uint8)
        if arr.shape != mask.shape:
            raise MediaError(f"mask part {part} is {arr.shape[1]}x{arr.shape[0]}, "
                             f"other parts are {mask.shape[1]}x{mask.shape[0]}")
        mask[arr > 0] = label
        found += 1
    if mask is None:
        raise MediaError(f"image {image_id}: no mask parts {folder}/{n:05d}_<part>.png found")
    return mask


def _center_square(a: np.ndarray) -> np.ndarray:
    h, w = a.shape[:2]
    if h == w:
        return a
    s = min(h, w)
    y0, x0 = (h - s) // 2, (w - s) // 2
    return a[y0 : y0 + s, x0 : x0 + s]


# ------------------------------------------------------------------------------------------------------------ dataset
class DomainDataset:
    """Decoded image/parsing pairs of one domain at ``size`` px, labels in ``label_set``.

    ``get(i, flip)`` → (image (3, S, S) float in [-1, 1], labels (S, S) int64); ``batch(indices, flips)`` stacks them.
    ``device`` is where an on-the-fly parser runs.  With ``cfg.lazy`` (plain images) an image is decoded and parsed
    when ``get``/``batch`` first asks for it; ``images``/``masks`` hold zeros until then.
    """

    def __init__(self, cfg: DomainDataConfig, label_set: str, size: int, device: Any = "cpu", name: str = "data"):
        L.num_classes(label_set)
        if not cfg.root:
            raise ConfigError(f"{name}.root is empty: set it to a dataset folder (e.g. --set {name}.root=DIR)")
        self.cfg, self.label_set, self.size, self.name = cfg, label_set, size, name
        root = Path(cfg.root)
        layout = detect_layout(root) if cfg.layout == "auto" else cfg.layout
        if not root.is_dir():
            raise ConfigError(f"{name}: dataset folder not found: {root}")
        self.layout = layout
        self._lazy: dict[str, Any] | None = None
        self.skipped: list[str] = []
        if layout == "images" and cfg.lazy:
            self._init_lazy(root, device)
            return
        images: list[np.ndarray] = []
        masks: list[np.ndarray] = []
        ids: list[str] = []
        if layout == "images":
            self._load_images(root, device, images, masks, ids)
        else:
            if layout == "pairs":
                items = _list_pair_folders(root, cfg.skip_bad)
                src_labels = cfg.mask_labels
            else:
                items = list_celebamask_hq(root)
                src_labels = "celebamask"
            if cfg.holdout > 0:
                _, held = split_ids([sid for sid, _, _ in items], cfg.holdout, cfg.holdout_seed)
                held_set = set(held)
                items = [it for it in items if it[0] not in held_set]
                logger.info("%s: %d ids held out (holdout=%g, seed %d)", name, len(held_set), cfg.holdout,
                            cfg.holdout_seed)
            if cfg.limit is not None:
                items = items[: cfg.limit]
            for sid, ip, mp in items:
                try:
                    img = read_image_rgb(ip)
                    mask = composite_celebamask_parts(mp, sid) if layout == "celebamask_hq" else read_mask(mp)
                    mask_path = mp if layout == "pairs" else f"{mp}/*/{sid}_*.png"
                    img, mask = self._prepare(img, mask, src_labels, mask_path)
                except MediaError as exc:
                    self._bad(exc)
                    continue
                images.append(img)
                masks.append(mask)
                ids.append(sid)
        if not images:
            skipped = f" ({len(self.skipped)} skipped)" if self.skipped else ""
            raise ConfigError(f"{name}: no usable images in {root}" + skipped)
        self.images = np.stack(images)  # (N, S, S, 3) uint8
        self.masks = np.stack(masks)  # (N, S, S) uint8, model label order
        self.ids = ids
        logger.info("%s: %d images from %s (layout %s)%s", name, len(ids), root, layout,
                    f", {len(self.skipped)} skipped" if self.skipped else "")

    def _bad(self, exc: MediaError) -> None:
        if not self.cfg.skip_bad:
            raise exc
        logger.warning("skipping: %s", exc)
        self.skipped.append(str(exc))

    def _prepare(self, img: np.ndarray, mask: np.ndarray, src_labels: str,
                 mask_path: Any) -> tuple[np.ndarray, np.ndarray]:
        img, s = _center_square(img), self.size
        mask = _center_square(mask)
        img = resize_image(img, s)
        if mask.shape != (s, s):
            mask = L.resize_labels(mask, (s, s))
        try:
            mask = remap_mask(mask, src_labels, self.label_set)
        except MediaError as exc:
            raise MediaError(f"mask {mask_path}: {exc}") from None
        mask = np.where(mask == IGNORE_INDEX, self.cfg.ignore_to, mask).astype(np.uint8)
        return img, mask

    def _image_files_and_parser(self, root: Path, device: Any) -> tuple[list[Path], torch.nn.Module]:
        """The plain images of ``root`` (sorted, ``limit`` applied) and the configured parser, loaded on ``device``."""
        from ..models.parser import PARSER_FORMAT
        from ..registry import load
        from .images import list_images

        if not self.cfg.parser:
            raise ConfigError(f"{self.name}: {root} holds plain images (no masks/): set {self.name}.parser to a "
                              "vidanime.parser checkpoint to predict their parsing")
        files = list_images(root, IMAGE_EXTS)
        if self.cfg.limit is not None:
            files = files[: self.cfg.limit]
        # A path or a bundled model name (e.g. the demo checkpoints record "parser-portrait").
        parser = load(self.cfg.parser, expect="parser", device=device, format=PARSER_FORMAT).model
        if parser.config.label_set != self.label_set:
            L.remap_table(parser.config.label_set, self.label_set)  # fails early when the orders are incompatible
        return files, parser

    @torch.no_grad()
    def _parse(self, parser: torch.nn.Module, squares: list[np.ndarray],
               device: Any) -> list[tuple[np.ndarray, np.ndarray]]:
        """(image (S, S, 3) uint8, labels (S, S) uint8 in this dataset's label set) of each square RGB image."""
        p_size, p_labels = parser.config.image_size, parser.config.label_set
        x = np.stack([resize_image(im, p_size) for im in squares])
        xt = torch.from_numpy(x).permute(0, 3, 1, 2).float().div(255.0).to(device)
        logits = parser(xt).float()
        if p_size != self.size:
            logits = torch.nn.functional.interpolate(logits, size=(self.size, self.size), mode="bilinear",
                                                     align_corners=False)
        lab = logits.argmax(1).to(torch.uint8).cpu().numpy()
        return [(resize_image(im, self.size), L.remap(m, p_labels, self.label_set).astype(np.uint8))
                for im, m in zip(squares, lab)]

    def _load_images(self, root: Path, device: Any, images: list, masks: list, ids: list) -> None:
        """Plain images: decode, then predict parsing with the configured parser checkpoint."""
        files, parser = self._image_files_and_parser(root, device)
        pending: list[tuple[str, np.ndarray]] = []

        def flush() -> None:
            if not pending:
                return
            for (sid, _), (im, m) in zip(pending, self._parse(parser, [sq for _, sq in pending], device)):
                images.append(im)
                masks.append(m)
                ids.append(sid)
            pending.clear()

        for f in files:
            try:
                pending.append((str(f.relative_to(root)), _center_square(read_image_rgb(f))))
            except MediaError as exc:
                self._bad(exc)
                continue
            if len(pending) >= self.cfg.parser_batch:
                flush()
        flush()
        logger.info("%s: parsed %d images with %s (%s labels)", self.name, len(ids), self.cfg.parser,
                    parser.config.label_set)

    def _init_lazy(self, root: Path, device: Any) -> None:
        """``lazy``: list the images now; decode and parse each on first use (:meth:`_ensure`)."""
        files, parser = self._image_files_and_parser(root, device)
        if not files:
            raise ConfigError(f"{self.name}: no usable images in {root}")
        n, s = len(files), self.size
        self.ids = [str(f.relative_to(root)) for f in files]
        self.images = np.zeros((n, s, s, 3), np.uint8)
        self.masks = np.zeros((n, s, s), np.uint8)
        self._lazy = {"files": files, "parser": parser, "device": device, "ready": np.zeros(n, bool)}
        logger.info("%s: %d images in %s, parsed with %s when first used", self.name, n, root, self.cfg.parser)

    def _ensure(self, indices: Sequence[int]) -> None:
        """Decode and parse the not yet loaded images among ``indices`` (lazy datasets) in one parser call.  An
        unreadable file raises, or with ``skip_bad`` is stood in for by the next readable one (logged)."""
        lazy = self._lazy
        if lazy is None:
            return
        todo = sorted({int(i) for i in indices if not lazy["ready"][int(i)]})
        if not todo:
            return
        squares = []
        for i in todo:
            for k in range(len(lazy["files"])):
                try:
                    squares.append(_center_square(read_image_rgb(lazy["files"][(i + k) % len(lazy["files"])])))
                    break
                except MediaError as exc:
                    self._bad(exc)
            else:
                raise ConfigError(f"{self.name}: no readable image among {len(lazy['files'])}")
        for i, (im, m) in zip(todo, self._parse(lazy["parser"], squares, lazy["device"])):
            self.images[i], self.masks[i] = im, m
            lazy["ready"][i] = True

    def __len__(self) -> int:
        return len(self.ids)

    def get(self, i: int, flip: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        self._ensure([i])
        img, mask = self.images[i], self.masks[i]
        if flip:
            img = img[:, ::-1]
            mask = flip_mask(mask, self.label_set)
        x = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float().div(127.5).sub(1.0)
        return x, torch.from_numpy(np.ascontiguousarray(mask)).long()

    def batch(self, indices: Sequence[int], flips: Sequence[bool] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Images (B, 3, S, S) in [-1, 1] and labels (B, S, S) int64 for ``indices`` (flipped where ``flips``)."""
        flips = flips if flips is not None else [False] * len(indices)
        self._ensure(indices)  # one parser call for the batch's new images (lazy datasets)
        pairs = [self.get(int(i), bool(f) and self.cfg.flip) for i, f in zip(indices, flips)]
        return torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])


# ------------------------------------------------------------------------------------------------------------ sampler
class ShardedSampler:
    """Endless, reproducible batches for DDP: epoch-wise shuffles of ``n`` items cut into global batches.

    Each step takes the next ``batch · world`` positions of the current shuffle (continuing into the next epoch's
    shuffle when needed) and process ``rank`` keeps its slice ``[rank·batch, (rank+1)·batch)``, so the union over ranks
    equals one process drawing a batch of ``batch · world``.  Shuffle and flip bits depend only on (seed, epoch), and
    the state is just (epoch, position): resuming continues bit-exactly, under any world size.
    """

    def __init__(self, n: int, batch: int, rank: int = 0, world: int = 1, seed: int = 0):
        if n < 1 or batch < 1 or not 0 <= rank < world:
            raise ValueError(f"ShardedSampler(n={n}, batch={batch}, rank={rank}, world={world}): invalid")
        self.n, self.batch, self.rank, self.world, self.seed = n, batch, rank, world, seed
        self.epoch, self.pos = 0, 0
        self._cache: tuple[int, torch.Tensor, torch.Tensor] | None = None

    def _epoch(self, epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self._cache is None or self._cache[0] != epoch:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._cache = (epoch, torch.randperm(self.n, generator=g), torch.rand(self.n, generator=g) < 0.5)
        return self._cache[1], self._cache[2]

    def next(self) -> tuple[list[int], list[bool]]:
        """This rank's (indices, flip bits) for the next step."""
        idx: list[int] = []
        flips: list[bool] = []
        need = self.batch * self.world
        while len(idx) < need:
            perm, flip = self._epoch(self.epoch)
            take = min(need - len(idx), self.n - self.pos)
            idx += perm[self.pos : self.pos + take].tolist()
            flips += flip[self.pos : self.pos + take].tolist()
            self.pos += take
            if self.pos == self.n:
                self.epoch, self.pos = self.epoch + 1, 0
        lo = self.rank * self.batch
        return idx[lo : lo + self.batch], flips[lo : lo + self.batch]

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "pos": self.pos}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.pos = int(state["epoch"]), int(state["pos"])
