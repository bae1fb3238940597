"""The training data pack: every training image of the bundled model set in one file of at most 50 MiB.

A bare GPU machine (torch, numpy, pillow, opencv; no PyAV, no internet) runs the whole training recipe from the
source tree plus this one file: :func:`build_pack` reads the shared assets folder (``../shared/assets``, see its
MANIFEST.md) once, :func:`materialize` decodes the pack into a folder tree the existing loaders read unchanged.

What is stored (measured on the real assets, see ``python -m pipelines.pack_data``):

* ``anime``  the 10,000 anime face crops at ``anime_size`` (128 px), WebP quality 75 (≈ 35 MiB, 33.7 dB PSNR to
  the source JPEGs; quality 80 would be 41 MiB and leave no room for the rest);
* ``faces``  the CelebAMask-HQ portraits (longest side at most ``face_size``, 256 px), WebP quality 80 (≈ 7.6 MiB,
  36.9 dB), their parsing masks as the *source PNG files, byte for byte* (≈ 2 MiB), ``pairs.csv`` and
  ``labels.json``; ids and file stems are those of the source, so the parsers' seeded held-out split is unchanged;
* ``anime_detector_checked.csv`` (no code reads it today; kept as the list of detector-checked crops);
* ``video``  the frames of the interpolator's clips (``configs/demo_interp_ifnet.yaml``), decoded and downscaled to
  ``frame_max_side`` (256 px) as the config does, WebP quality 80 (≈ 4.3 MiB, 39.0 dB);
* ``MANIFEST.md`` and ``LICENSES/`` of the assets folder, verbatim, and per-section source / licence notes.

WebP beats JPEG at every size that fits (anime: WebP q75 3.6 KiB/crop at 33.7 dB against JPEG q80 5.1 KiB at
32.8 dB), so the lossy sections are WebP.  Images keep their stems; their extension becomes the codec's
(``00002.jpg`` → ``00002.webp``), and the two CSV files name the stored files (their file columns are rewritten).

File layout (``torch.save`` of plain containers, read with ``torch.load(path, weights_only=True)``; every group of
encoded files is one uint8 tensor of their concatenated bytes plus an int64 offsets tensor)::

    {"format": "vidanime.datapack", "version": 1, "fingerprint": sha256 hex of the content,
     "info": {section: {"count", "bytes", "codec", "quality", ..., "source", "licence"}},
     "anime": {"files": [relpath], "blobs": {"data": uint8 (B,), "offsets": int64 (N+1,)}},
     "faces": {"ids": [id], "images": [relpath], "masks": [relpath], "image_blobs": {...}, "mask_blobs": {...},
               "pairs_csv": str, "labels_json": str},
     "anime_detector_checked_csv": str,
     "video": {"clips": [stem], "frame_counts": [int], "ext": ".webp", "max_side": int, "blobs": {...}},
     "manifest_md": str, "licenses": {file name: text}}

This module imports neither PyAV nor decord nor lpips at import time; PyAV is imported (by
:func:`interp.data.decode_clip`) only while building a pack from real video files.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Iterable, Sequence

import numpy as np
import torch

from ..errors import CheckpointError, ConfigError, MediaError
from ..fileio import atomic_path, atomic_write_text

logger = logging.getLogger(__name__)

__all__ = ["FORMAT", "VERSION", "DEFAULT_CLIPS", "MAX_BYTES", "MARKER", "Blobs", "DataPack", "PackInfo",
           "default_assets_root", "build_pack", "load_pack", "materialize"]

FORMAT = "vidanime.datapack"
VERSION = 1
MAX_BYTES = 50 * 2**20  # the default size cap of a pack file
MARKER = ".datapack-complete.json"  # written last by materialize: the folder holds a complete copy
# The interpolator's clips (configs/demo_interp_ifnet.yaml; interp_ifnet_tiny.yaml uses the first), under video/.
DEFAULT_CLIPS = ("realesrgan_onepiece_demo.mp4", "liveportrait_d3.mp4", "liveportrait_d12.mp4",
                 "liveportrait_s32.mp4", "liveportrait_d0.mp4")
CODECS = {"webp": (".webp", "IMWRITE_WEBP_QUALITY"), "jpeg": (".jpg", "IMWRITE_JPEG_QUALITY")}

# Source and licence notes, from the assets' MANIFEST.md (which the pack also holds verbatim).
_NOTES = {
    "anime": ("yuhengfdada/lbpcascade_animeface examples/cropped/: getchu-style anime face crops made with "
              "lbpcascade_animeface from scraped character art, exact duplicates dropped",
              "no licence attached; the artwork belongs to its makers: internal training and test data only, "
              "never ship the images"),
    "faces": ("CelebAMask-HQ mini set (anamikakolady/CelebAMask-Face-Parsing, dev-public/train), 256 px, masks in "
              "CelebAMask-HQ label order",
              "CelebAMask-HQ Dataset Agreement: non-commercial research, copies for internal use within one "
              "organisation only; keep out of anything the project ships"),
    "anime_detector_checked": ("made for the assets folder: the anime crops with exactly one lbpcascade_animeface "
                               "hit of width >= 40 px (box given)", "-"),
}
_CLIP_NOTES = {
    "liveportrait_": ("KwaiVGI/LivePortrait assets/examples", "MIT; the people filmed are not covered: internal data"),
    "realesrgan_": ("xinntao/Real-ESRGAN inputs/video", "BSD-3-Clause; footage (One Piece) belongs to Toei Animation "
                    "/ Eiichiro Oda: internal test data, do not redistribute"),
    "facenet_pytorch_": ("timesler/facenet-pytorch examples", "MIT; the people filmed are not covered: internal data"),
}


def default_assets_root() -> Path:
    """``$VIDANIME_ASSETS`` if set, else ``../shared/assets`` beside the repository (as tests and interp find it)."""
    env = os.environ.get("VIDANIME_ASSETS")
    return Path(env) if env else Path(__file__).resolve().parents[3] / "shared" / "assets"


# ---------------------------------------------------------------------------------------------------------- blobs
@dataclass(frozen=True)
class Blobs:
    """Encoded files stored back to back: ``data`` (B,) uint8, ``offsets`` (N+1,) int64; file i is
    ``data[offsets[i]:offsets[i+1]]``."""

    data: torch.Tensor
    offsets: torch.Tensor

    @classmethod
    def from_bytes(cls, items: Sequence[bytes]) -> "Blobs":
        """Pack a list of byte strings."""
        offsets = np.zeros(len(items) + 1, np.int64)
        offsets[1:] = np.cumsum([len(b) for b in items]) if items else []
        data = np.frombuffer(b"".join(items), np.uint8).copy()
        return cls(torch.from_numpy(data), torch.from_numpy(offsets))

    @classmethod
    def from_dict(cls, d: Any, where: str) -> "Blobs":
        """Read back :meth:`to_dict`, checking types and offsets (a :class:`MediaError` naming ``where`` if wrong)."""
        if not isinstance(d, dict) or not isinstance(d.get("data"), torch.Tensor) \
                or not isinstance(d.get("offsets"), torch.Tensor):
            raise MediaError(f"{where}: expected a dict of 'data' and 'offsets' tensors")
        data, offsets = d["data"], d["offsets"]
        if data.dtype != torch.uint8 or data.dim() != 1 or offsets.dtype != torch.int64 or offsets.dim() != 1 \
                or len(offsets) < 1 or int(offsets[0]) != 0 or int(offsets[-1]) != len(data) \
                or bool((offsets[1:] < offsets[:-1]).any()):
            raise MediaError(f"{where}: inconsistent data/offsets tensors")
        return cls(data, offsets)

    def to_dict(self) -> dict[str, torch.Tensor]:
        return {"data": self.data, "offsets": self.offsets}

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> bytes:
        a, b = int(self.offsets[i]), int(self.offsets[i + 1])
        return self.data[a:b].numpy().tobytes()

    @property
    def nbytes(self) -> int:
        return int(self.data.numel())


# ------------------------------------------------------------------------------------------------------ the pack
@dataclass
class DataPack:
    """A loaded pack (see the module doc for what each field holds); ``path`` is where it was read from, if any."""

    anime_files: list[str]  # paths relative to anime/, with the stored extension, sorted
    anime: Blobs
    face_ids: list[str]
    face_images: list[str]  # paths relative to faces/ (images/<id>.webp)
    face_masks: list[str]  # paths relative to faces/ (masks/<id>.png)
    face_image_blobs: Blobs
    face_mask_blobs: Blobs
    pairs_csv: str  # "" when the source had the images/ + masks/ layout without a pairs.csv
    labels_json: str
    detector_csv: str
    clips: list[str]  # clip stems: frame folder names under video/
    frame_counts: list[int]
    frame_ext: str
    frame_max_side: int
    frames: Blobs  # all clips' frames, clip after clip
    info: dict[str, Any] = field(default_factory=dict)
    manifest_md: str = ""
    licenses: dict[str, str] = field(default_factory=dict)
    fingerprint: str = ""
    path: Path | None = None

    def compute_fingerprint(self) -> str:
        """sha256 hex of every stored byte and name (not of ``info``), so two packs of equal content match."""
        h = hashlib.sha256()
        names = [self.anime_files, self.face_ids, self.face_images, self.face_masks, self.clips, self.frame_counts,
                 self.frame_ext, self.frame_max_side, self.pairs_csv, self.labels_json, self.detector_csv]
        h.update(json.dumps(names, sort_keys=True).encode())
        for b in (self.anime, self.face_image_blobs, self.face_mask_blobs, self.frames):
            h.update(b.offsets.numpy().tobytes())
            h.update(b.data.numpy())
        return h.hexdigest()

    def to_dict(self) -> dict[str, Any]:
        """The plain dict written to the file (see the module doc)."""
        return {
            "format": FORMAT, "version": VERSION, "fingerprint": self.fingerprint or self.compute_fingerprint(),
            "info": self.info,
            "anime": {"files": self.anime_files, "blobs": self.anime.to_dict()},
            "faces": {"ids": self.face_ids, "images": self.face_images, "masks": self.face_masks,
                      "image_blobs": self.face_image_blobs.to_dict(), "mask_blobs": self.face_mask_blobs.to_dict(),
                      "pairs_csv": self.pairs_csv, "labels_json": self.labels_json},
            "anime_detector_checked_csv": self.detector_csv,
            "video": {"clips": self.clips, "frame_counts": self.frame_counts, "ext": self.frame_ext,
                      "max_side": self.frame_max_side, "blobs": self.frames.to_dict()},
            "manifest_md": self.manifest_md, "licenses": self.licenses,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str) -> "DataPack":
        """Check and read a dict written by :meth:`to_dict`; any problem is a one-line :class:`MediaError`."""
        try:
            a, f, v = d["anime"], d["faces"], d["video"]
            pack = cls(
                anime_files=list(a["files"]), anime=Blobs.from_dict(a["blobs"], f"{where} anime"),
                face_ids=list(f["ids"]), face_images=list(f["images"]), face_masks=list(f["masks"]),
                face_image_blobs=Blobs.from_dict(f["image_blobs"], f"{where} face images"),
                face_mask_blobs=Blobs.from_dict(f["mask_blobs"], f"{where} face masks"),
                pairs_csv=str(f["pairs_csv"]), labels_json=str(f["labels_json"]),
                detector_csv=str(d["anime_detector_checked_csv"]),
                clips=list(v["clips"]), frame_counts=[int(n) for n in v["frame_counts"]], frame_ext=str(v["ext"]),
                frame_max_side=int(v["max_side"]), frames=Blobs.from_dict(v["blobs"], f"{where} video"),
                info=dict(d.get("info") or {}), manifest_md=str(d.get("manifest_md", "")),
                licenses=dict(d.get("licenses") or {}), fingerprint=str(d.get("fingerprint", "")))
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, MediaError):
                raise
            raise MediaError(f"{where}: a section of the data pack is missing or malformed ({exc!s:.80})") from None
        counts = {"anime": (len(pack.anime_files), len(pack.anime)),
                  "face images": (len(pack.face_ids), len(pack.face_image_blobs)),
                  "face masks": (len(pack.face_masks), len(pack.face_mask_blobs)),
                  "face image names": (len(pack.face_ids), len(pack.face_images)),
                  "clips": (len(pack.clips), len(pack.frame_counts)),
                  "video frames": (sum(pack.frame_counts), len(pack.frames))}
        for what, (n_names, n_items) in counts.items():
            if n_names != n_items:
                raise MediaError(f"{where}: {n_names} {what} named but {n_items} stored")
        for rel in [*pack.anime_files, *pack.face_images, *pack.face_masks, *pack.clips, *pack.licenses]:
            _check_relpath(rel, where)
        return pack


@dataclass
class PackInfo:
    """What :func:`build_pack` wrote: the file, its size, per-section counts and bytes, and the build time."""

    path: Path
    bytes: int
    sections: dict[str, dict[str, Any]]
    seconds: float

    def summary(self) -> str:
        """One line: counts and MiB per section."""
        s = self.sections

        def mib(n: int) -> float:
            return n / 2**20

        return (f"{self.path}: {s['anime']['count']} anime, {s['faces']['count']} faces + masks, "
                f"{s['video']['count']} clips / {s['video']['frames']} frames; {mib(self.bytes):.1f} MiB "
                f"(anime {mib(s['anime']['bytes']):.1f}, faces {mib(s['faces']['bytes']):.1f}, "
                f"video {mib(s['video']['bytes']):.1f}) in {self.seconds:.0f} s")


# ------------------------------------------------------------------------------------------------------- helpers
def _check_relpath(rel: str, where: str) -> None:
    """Refuse stored names that would be written outside the destination folder."""
    p = PurePosixPath(rel)
    if not rel or p.is_absolute() or ".." in p.parts or "\\" in rel:
        raise MediaError(f"{where}: unsafe file name {rel!r} in the data pack")


def _encode(rgb: np.ndarray, codec: str, quality: int) -> bytes:
    """(H, W, 3) uint8 RGB → encoded bytes with OpenCV (``codec`` webp | jpeg, ``quality`` 1-100)."""
    import cv2

    ext, flag = CODECS[codec]
    params = [getattr(cv2, flag), int(quality)]
    if codec == "jpeg":
        params += [cv2.IMWRITE_JPEG_OPTIMIZE, 1]
    ok, buf = cv2.imencode(ext, np.ascontiguousarray(rgb[..., ::-1]), params)
    if not ok:
        raise MediaError(f"OpenCV cannot encode {codec} images")
    return buf.tobytes()


def _fit(rgb: np.ndarray, max_side: int) -> np.ndarray:
    """(H, W, 3) uint8, area-downscaled (aspect kept) so the longest side is at most ``max_side``; never enlarged."""
    import cv2

    h, w = rgb.shape[:2]
    if max(h, w) <= max_side:
        return rgb
    s = max_side / max(h, w)
    return cv2.resize(rgb, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)


def _rewrite_suffix(text: str, column: str, ext: str) -> str:
    """CSV ``text`` with the file extension of every value in ``column`` set to ``ext`` (line ends kept)."""
    rows = list(csv.reader(io.StringIO(text, newline="")))
    if not rows or column not in rows[0]:
        return text
    k = rows[0].index(column)
    for row in rows[1:]:
        if len(row) > k and row[k]:
            row[k] = PurePosixPath(row[k]).with_suffix(ext).as_posix()
    out = io.StringIO(newline="")
    csv.writer(out, lineterminator="\r\n" if "\r\n" in text else "\n").writerows(rows)
    return out.getvalue()


def _need_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise ConfigError(f"assets folder {path.parent} has no {path.name}/ ({what})")
    return path


def _clip_note(stem: str) -> tuple[str, str]:
    for prefix, note in _CLIP_NOTES.items():
        if stem.startswith(prefix):
            return note
    return (f"video/{stem}", "see MANIFEST.md")


def _progress(done: int, total: int, what: str, on: bool, every: int = 2000) -> None:
    if on and (done % every == 0 or done == total):
        logger.info("%s: %d/%d", what, done, total)


# --------------------------------------------------------------------------------------------------------- build
def _build_anime(root: Path, size: int, codec: str, quality: int, progress: bool) -> tuple[list[str], Blobs]:
    from .images import list_images, load_image

    ext = CODECS[codec][0]
    files = list_images(root)
    names, blobs = [], []
    for i, p in enumerate(files, 1):
        blobs.append(_encode(load_image(p, size), codec, quality))
        names.append(p.relative_to(root).with_suffix(ext).as_posix())
        _progress(i, len(files), "anime", progress)
    return names, Blobs.from_bytes(blobs)


def _build_faces(root: Path, max_side: int, codec: str, quality: int, progress: bool) -> dict[str, Any]:
    from .image_io import read_image_rgb
    from .parsing import list_pairs

    ext = CODECS[codec][0]
    pairs = list_pairs(root)
    ids, images, masks, image_blobs, mask_blobs = [], [], [], [], []
    for i, (sid, ip, mp) in enumerate(pairs, 1):
        try:
            rel_img, rel_mask = ip.relative_to(root), mp.relative_to(root)
        except ValueError:
            raise ConfigError(f"{root}: pair {sid} points outside the folder ({ip}, {mp})") from None
        if not mp.is_file():
            raise MediaError(f"mask not found: {mp}")
        ids.append(sid)
        images.append(rel_img.with_suffix(ext).as_posix())
        masks.append(rel_mask.as_posix())
        image_blobs.append(_encode(_fit(read_image_rgb(ip), max_side), codec, quality))
        mask_blobs.append(mp.read_bytes())  # lossless: the source PNG, byte for byte
        _progress(i, len(pairs), "faces", progress, every=300)
    csv_path = root / "pairs.csv"
    pairs_csv = _rewrite_suffix(csv_path.read_text(), "image", ext) if csv_path.is_file() else ""
    labels = root / "labels.json"
    return {"ids": ids, "images": images, "masks": masks, "image_blobs": Blobs.from_bytes(image_blobs),
            "mask_blobs": Blobs.from_bytes(mask_blobs), "pairs_csv": pairs_csv,
            "labels_json": labels.read_text() if labels.is_file() else ""}


def _build_video(root: Path, clips: Sequence[str], max_side: int, codec: str, quality: int,
                 progress: bool) -> tuple[list[str], list[int], Blobs]:
    # the interpolator's own loader, so the stored frames are exactly what training decoded from the clips;
    # PyAV is imported there, and only for real video files
    from interp.data import decode_clip

    stems, counts, blobs = [], [], []
    for name in clips:
        if not name or "/" in name or "\\" in name or name in (".", ".."):
            raise ConfigError(f"clip {name!r}: expected a file or folder name directly under {root}")
        src = root / name
        if not src.exists():
            raise MediaError(f"clip not found: {src}")
        frames = decode_clip(src, max_side=max_side)
        stems.append(Path(name).stem if src.is_file() else Path(name).name)
        counts.append(len(frames))
        blobs += [_encode(f, codec, quality) for f in frames]
        if progress:
            logger.info("video: %s, %d frames %dx%d", name, len(frames), frames.shape[2], frames.shape[1])
    if len(set(stems)) != len(stems):
        raise ConfigError(f"clips {list(clips)} share a name stem; each becomes a frame folder video/<stem>/")
    return stems, counts, Blobs.from_bytes(blobs)


def build_pack(assets_root: str | os.PathLike, out_path: str | os.PathLike, *, anime_size: int = 128,
               anime_quality: int = 75, face_size: int = 256, face_quality: int = 80, frame_max_side: int = 256,
               frame_quality: int = 80, codec: str = "webp", clips: Sequence[str] = DEFAULT_CLIPS,
               max_bytes: int = MAX_BYTES, progress: bool = True) -> PackInfo:
    """Read the assets folder and write its training data as one pack file at ``out_path`` (atomically).

    Args:
        assets_root: the shared assets folder (``anime/``, ``faces/``, ``anime_detector_checked.csv``, ``video/``).
        out_path: the pack file to write; an existing file is replaced.
        anime_size: side of the stored anime crops in px (centre-cropped square, Lanczos, as the GAN loader does).
        face_size: longest side of the stored portraits in px (only downscaled; masks are kept as they are).
        frame_max_side: longest side of the stored video frames (as ``decode_clip``'s ``max_side``).
        anime_quality, face_quality, frame_quality: encoder quality 1-100 of each lossy section.
        codec: ``webp`` (default, smaller at equal quality) or ``jpeg``.
        clips: file names under ``video/`` (video files or frame folders); ``()`` stores no video.
        max_bytes: size cap of the file; a larger pack raises :class:`MediaError` and nothing is written.
        progress: log progress at INFO level.

    Raises:
        ConfigError: the assets folder or a section of it is missing, or an argument is out of range.
        MediaError: an image or clip cannot be read, or the pack would exceed ``max_bytes``.
    """
    t0 = time.perf_counter()
    root = Path(assets_root)
    if not root.is_dir():
        raise ConfigError(f"assets folder not found: {root} (set --assets or VIDANIME_ASSETS)")
    if codec not in CODECS:
        raise ConfigError(f"codec must be one of {', '.join(CODECS)}, got {codec!r}")
    for name, q in (("anime_quality", anime_quality), ("face_quality", face_quality), ("frame_quality", frame_quality)):
        if not 1 <= q <= 100:
            raise ConfigError(f"{name} must be in 1..100, got {q}")
    for name, s in (("anime_size", anime_size), ("face_size", face_size), ("frame_max_side", frame_max_side)):
        if s < 16:
            raise ConfigError(f"{name} must be at least 16 px, got {s}")
    anime_dir = _need_dir(root / "anime", "the anime face crops")
    faces_dir = _need_dir(root / "faces", "the CelebAMask-HQ portraits and masks")
    video_dir = _need_dir(root / "video", "the interpolator's clips") if clips else root / "video"
    detector = root / "anime_detector_checked.csv"
    if not detector.is_file():
        raise ConfigError(f"assets folder {root} has no anime_detector_checked.csv")

    anime_files, anime = _build_anime(anime_dir, anime_size, codec, anime_quality, progress)
    faces = _build_faces(faces_dir, face_size, codec, face_quality, progress)
    stems, counts, frames = _build_video(video_dir, clips, frame_max_side, codec, frame_quality, progress)
    detector_csv = _rewrite_suffix(detector.read_text(), "file", CODECS[codec][0])
    manifest = root / "MANIFEST.md"
    lic_dir = root / "LICENSES"
    licenses = {p.name: p.read_text(errors="replace") for p in sorted(lic_dir.glob("*")) if p.is_file()} \
        if lic_dir.is_dir() else {}

    face_bytes = faces["image_blobs"].nbytes + faces["mask_blobs"].nbytes
    info: dict[str, Any] = {
        "anime": {"count": len(anime), "bytes": anime.nbytes, "codec": codec, "quality": anime_quality,
                  "size": anime_size, "source": _NOTES["anime"][0], "licence": _NOTES["anime"][1]},
        "faces": {"count": len(faces["ids"]), "bytes": face_bytes, "image_bytes": faces["image_blobs"].nbytes,
                  "mask_bytes": faces["mask_blobs"].nbytes, "codec": codec, "quality": face_quality,
                  "max_side": face_size, "masks": "source PNG files, byte for byte",
                  "source": _NOTES["faces"][0], "licence": _NOTES["faces"][1]},
        "anime_detector_checked": {"count": max(0, len(detector_csv.splitlines()) - 1),
                                   "bytes": len(detector_csv.encode()), "source": _NOTES["anime_detector_checked"][0],
                                   "licence": _NOTES["anime_detector_checked"][1]},
        "video": {"count": len(stems), "frames": sum(counts), "bytes": frames.nbytes, "codec": codec,
                  "quality": frame_quality, "max_side": frame_max_side,
                  "clips": {s: {"frames": n, "source": _clip_note(s)[0], "licence": _clip_note(s)[1]}
                            for s, n in zip(stems, counts)}},
        "note": "internal training data of vidanime; do not redistribute (see manifest_md and licenses)",
    }
    pack = DataPack(anime_files=anime_files, anime=anime, face_ids=faces["ids"], face_images=faces["images"],
                    face_masks=faces["masks"], face_image_blobs=faces["image_blobs"],
                    face_mask_blobs=faces["mask_blobs"], pairs_csv=faces["pairs_csv"],
                    labels_json=faces["labels_json"], detector_csv=detector_csv, clips=stems, frame_counts=counts,
                    frame_ext=CODECS[codec][0], frame_max_side=frame_max_side, frames=frames, info=info,
                    manifest_md=manifest.read_text() if manifest.is_file() else "", licenses=licenses)
    pack.fingerprint = pack.compute_fingerprint()
    out = Path(out_path)
    with atomic_path(out) as tmp:
        torch.save(pack.to_dict(), tmp)
        size = tmp.stat().st_size
        if size > max_bytes:
            raise MediaError(f"the data pack would be {size / 2**20:.1f} MiB, over the cap of {max_bytes / 2**20:.1f} "
                             f"MiB (anime {anime.nbytes / 2**20:.1f}, faces {face_bytes / 2**20:.1f}, video "
                             f"{frames.nbytes / 2**20:.1f}); lower the qualities or sizes, or raise the cap")
    result = PackInfo(out, size, info, time.perf_counter() - t0)
    logger.debug("%s", result.summary())
    return result


# ---------------------------------------------------------------------------------------------------------- load
def load_pack(path: str | os.PathLike, verify: bool = True) -> DataPack:
    """Read a pack file written by :func:`build_pack` (``torch.load(weights_only=True)``: no code is unpickled).

    A missing file, another kind of file, another format or a newer version is a one-line :class:`MediaError`;
    ``verify`` also recomputes the content fingerprint (≈ 0.1 s for 50 MiB) to catch a damaged file.
    """
    from ..checkpoint import read_torch_file

    p = Path(path)
    if not p.is_file():
        raise MediaError(f"data pack not found: {p}" if not p.exists() else f"data pack {p} is not a file")
    try:
        d = read_torch_file(p)
    except CheckpointError as exc:
        raise MediaError(f"{p} is not a vidanime data pack ({exc})") from None
    fmt = d.get("format") if isinstance(d, dict) else None
    if fmt != FORMAT:
        what = f"format {fmt!r}" if fmt else f"a {type(d).__name__} without a 'format' key"
        raise MediaError(f"{p} is not a vidanime data pack ({what}; expected {FORMAT!r}, written by "
                         "python -m pipelines.pack_data)")
    version = d.get("version")
    if not isinstance(version, int) or version > VERSION or version < 1:
        raise MediaError(f"{p} is data pack version {version}; this vidanime reads version {VERSION} "
                         "(rebuild it with python -m pipelines.pack_data or update vidanime)")
    pack = DataPack.from_dict(d, str(p))
    pack.path = p
    if verify and pack.fingerprint and pack.compute_fingerprint() != pack.fingerprint:
        raise MediaError(f"data pack {p} is damaged (its content does not match its fingerprint); copy it again")
    return pack


# ------------------------------------------------------------------------------------------------- materialize
def _section_paths(dest: Path) -> dict[str, Path]:
    return {"root": dest, "anime": dest / "anime", "faces": dest / "faces",
            "anime_detector_checked": dest / "anime_detector_checked.csv", "video": dest / "video"}


def _write_all(base: Path, names: Iterable[str], blobs: Blobs) -> None:
    made: set[Path] = set()
    for i, rel in enumerate(names):
        target = base / rel
        if target.parent not in made:
            target.parent.mkdir(parents=True, exist_ok=True)
            made.add(target.parent)
        target.write_bytes(blobs[i])


def materialize(pack_or_path: DataPack | str | os.PathLike, dest_dir: str | os.PathLike) -> dict[str, Path]:
    """Write a pack out as the folder tree the existing loaders read unchanged; returns the paths of each section.

    ``dest/anime/<stem>.webp`` (:class:`~vidanime.data.images.ImageFolderDataset`, the GAN's ``data.path``),
    ``dest/faces/{images,masks,pairs.csv,labels.json}`` (:func:`~vidanime.data.parsing.list_pairs`, the parsers'
    ``data.root``), ``dest/anime_detector_checked.csv``, ``dest/video/<clip stem>/000000.webp …`` (frame folders:
    with ``VIDANIME_ASSETS=dest`` the configs' ``assets/video/<stem>.mp4`` resolve to them, see
    :func:`interp.data.resolve_clip`), plus ``MANIFEST.md`` and ``LICENSES/``.

    The tree is written into a temporary sibling folder and renamed when complete, with the marker file
    ``.datapack-complete.json`` written last; a folder that already holds a complete copy of the same pack is left
    as it is (nothing is written).  A folder holding anything else raises :class:`ConfigError`.
    Keys of the result: ``root``, ``anime``, ``faces``, ``anime_detector_checked``, ``video``.
    """
    pack = pack_or_path if isinstance(pack_or_path, DataPack) else load_pack(pack_or_path)
    fingerprint = pack.fingerprint or pack.compute_fingerprint()
    dest = Path(dest_dir)
    paths = _section_paths(dest)
    marker = dest / MARKER
    if marker.is_file():
        try:
            have = json.loads(marker.read_text()).get("fingerprint")
        except (OSError, ValueError, AttributeError):
            have = None
        if have == fingerprint:
            logger.info("%s already holds this data pack; nothing to do", dest)
            return paths
        raise ConfigError(f"{dest} holds another data pack's copy; delete it or choose another folder")
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise ConfigError(f"{dest} exists and is not a complete data pack copy; delete it or choose an empty folder")

    t0 = time.perf_counter()
    stage = dest.parent / f".{dest.name}.partial-datapack"
    if stage.exists():
        shutil.rmtree(stage)  # the leftover of an interrupted materialize (our own name)
    stage.mkdir(parents=True)
    try:
        _write_all(stage / "anime", pack.anime_files, pack.anime)
        faces = stage / "faces"
        _write_all(faces, pack.face_images, pack.face_image_blobs)
        _write_all(faces, pack.face_masks, pack.face_mask_blobs)
        if pack.pairs_csv:
            (faces / "pairs.csv").write_text(pack.pairs_csv, newline="")
        if pack.labels_json:
            (faces / "labels.json").write_text(pack.labels_json)
        (stage / "anime_detector_checked.csv").write_text(pack.detector_csv, newline="")
        (stage / "video").mkdir()
        start = 0
        for stem, n in zip(pack.clips, pack.frame_counts):
            names = [f"{stem}/{i:06d}{pack.frame_ext}" for i in range(n)]
            sub = Blobs(pack.frames.data, pack.frames.offsets[start:start + n + 1])
            _write_all(stage / "video", names, sub)
            start += n
        if pack.manifest_md:
            (stage / "MANIFEST.md").write_text(pack.manifest_md)
        for name, text in pack.licenses.items():
            (stage / "LICENSES").mkdir(exist_ok=True)
            (stage / "LICENSES" / name).write_text(text)
        atomic_write_text(stage / MARKER, json.dumps({"format": FORMAT, "version": VERSION,
                                                      "fingerprint": fingerprint, "info": pack.info}, indent=1))
        if dest.exists():
            dest.rmdir()  # empty, checked above
        os.replace(stage, dest)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    logger.info("materialized %s into %s in %.1f s", pack.path or "the data pack", dest, time.perf_counter() - t0)
    return paths
