"""The threaded decode → process → encode runner: order, pts, bounded memory, error propagation, no partial output."""
from __future__ import annotations

import threading
import time
from fractions import Fraction

import numpy as np
import pytest

from vidanime.video.io import Frame, VideoReader, VideoWriter
from vidanime.video.stages import run_serial, run_stages

from .media import frame_number, make_clip, pattern


def _frames(n, h=8, w=8, fail_at=None, counter=None):
    for i in range(n):
        if i == fail_at:
            raise OSError("disk gone")
        if counter is not None:
            counter["made"] += 1
            counter["peak"] = max(counter["peak"], counter["made"] - counter["written"])
        yield Frame(image=np.full((h, w, 3), i % 256, np.uint8), pts=10 * i, time=i / 10, index=i,
                    time_base=Fraction(1, 100))


class ListWriter:
    """Stand-in writer that records (image, pts); optionally slow or failing."""

    def __init__(self, delay=0.0, fail_at=None, counter=None):
        self.items, self.delay, self.fail_at, self.counter = [], delay, fail_at, counter

    def write(self, image, pts=None):
        if len(self.items) == self.fail_at:
            raise RuntimeError("encoder broke")
        time.sleep(self.delay)
        self.items.append((image.copy(), pts))
        if self.counter is not None:
            self.counter["written"] += 1


def _no_stage_threads():
    return not any(t.name.startswith("vidanime-") and t.is_alive() for t in threading.enumerate())


def test_order_pts_and_processing_match_serial():
    invert = lambda f: 255 - f.image  # noqa: E731
    a, b = ListWriter(), ListWriter()
    stats = run_stages(_frames(50), invert, a, queue_size=3, progress=False)
    run_serial(_frames(50), invert, b)
    assert stats.frames == 50 and [p for _, p in a.items] == [10 * i for i in range(50)]
    assert all(np.array_equal(x, y) for (x, _), (y, _) in zip(a.items, b.items))
    assert a.items[7][0][0, 0, 0] == 255 - 7
    c = ListWriter()
    run_stages(_frames(23), lambda fs: [255 - f.image for f in fs], c, batch_size=5, progress=False)
    assert [p for _, p in c.items] == [10 * i for i in range(23)] and c.items[22][0][0, 0, 0] == 255 - 22
    assert _no_stage_threads()


def test_memory_bounded_by_queues():
    counter = {"made": 0, "written": 0, "peak": 0}
    run_stages(_frames(200, counter=counter), lambda f: f.image, ListWriter(delay=0.002, counter=counter),
               queue_size=4, progress=False)
    assert counter["written"] == 200
    assert counter["peak"] <= 2 * 4 + 4  # two queues + one frame in each stage's hands, never the whole clip


def test_concurrency_overlaps_stages():
    """Each stage works while the next one is busy: processing of frame 0 waits for the decoder to reach frame 3, and
    writing frame 0 waits for processing to reach frame 3.  Run serially, both waits would time out (no wall-clock
    bound: the test is the same on a loaded machine)."""
    decoded_3, processed_3 = threading.Event(), threading.Event()
    seen = {}

    def frames():
        for f in _frames(10):
            yield f
            if f.index == 3:
                decoded_3.set()

    def fn(f):
        if f.index == 0:
            seen["decode during process"] = decoded_3.wait(10)
        if f.index == 3:
            processed_3.set()
        return f.image

    class WaitingWriter(ListWriter):
        def write(self, image, pts=None):
            if not self.items:
                seen["process during encode"] = processed_3.wait(10)
            super().write(image, pts)

    writer = WaitingWriter()
    run_stages(frames(), fn, writer, queue_size=4, progress=False)
    assert seen == {"decode during process": True, "process during encode": True}
    assert [p for _, p in writer.items] == [10 * i for i in range(10)]


@pytest.mark.parametrize("where", ["decode", "process", "encode"])
def test_error_in_any_stage_stops_all_and_is_reraised(where):
    frames = _frames(100, fail_at=30 if where == "decode" else None)

    def fn(f):
        if where == "process" and f.index == 40:
            raise ValueError("model broke")
        return f.image

    writer = ListWriter(fail_at=20 if where == "encode" else None)
    err = {"decode": OSError, "process": ValueError, "encode": RuntimeError}[where]
    t0 = time.perf_counter()
    with pytest.raises(err):
        run_stages(frames, fn, writer, queue_size=4, progress=False)
    assert time.perf_counter() - t0 < 10
    assert len(writer.items) < 100
    time.sleep(0.2)
    assert _no_stage_threads()


def test_interrupt_leaves_no_output(tmp_path):
    src = make_clip(tmp_path / "in.mp4", n=20)
    out = tmp_path / "out.mp4"

    def fn(f):
        if f.index == 10:
            raise KeyboardInterrupt
        return f.image

    with pytest.raises(KeyboardInterrupt):
        with VideoReader(src) as r, VideoWriter(out, like=r, preset="ultrafast") as w:
            run_stages(r, fn, w, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


def test_real_encode_through_stages(tmp_path):
    src = make_clip(tmp_path / "in.mp4", n=30, audio="aac")
    out = tmp_path / "out.mp4"
    with VideoReader(src) as r, VideoWriter(out, like=r, audio_from=src, preset="ultrafast") as w:
        stats = run_stages(r, lambda f: np.ascontiguousarray(f.image[:, ::-1]), w, queue_size=2, progress=False)
    assert stats.frames == 30
    back = list(VideoReader(out))
    assert len(back) == 30
    assert frame_number(back[17].image[:, ::-1]) == 17
    assert np.abs(back[5].image[:, ::-1].astype(int) - pattern(5, 48, 64)).mean() < 3
