"""StyleAnimeFaceTranslator on tiny models: the crops go through parser → encoders → FaceBank → G and come back."""
import numpy as np
import pytest
import torch

from tests.conftest import REPO
from vidanime.config import load_config
from vidanime.errors import VidanimeError
from vidanime.models.face_translator import IdentityFaceTranslator, StyleAnimeFaceTranslator
from vidanime.models.parser import ParserConfig, build_parser
from vidanime.models.styleanime import StyleAnime, StyleAnimeConfig


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    model = StyleAnime(load_config(REPO / "configs" / "styleanime_tiny.yaml", StyleAnimeConfig)).eval()
    parser = build_parser(ParserConfig(width=0.125, blocks=[1, 1, 1, 1], image_size=64)).eval()
    return model, parser


def crops(n=3, s=48, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, s, s, 3), dtype=np.uint8)


def test_translate_matches_model_on_same_inputs(tiny):
    model, parser = tiny
    tr = StyleAnimeFaceTranslator(model, parser, parsing_smooth=0)
    x = crops()
    res = tr(x, [0, 1, 2])
    assert res.crops.shape == x.shape and res.crops.dtype == np.uint8
    assert res.masks.shape == (3, 48, 48) and 0 <= res.masks.min() and res.masks.max() <= 1
    assert res.latents.shape == (3, model.n_latent, 32)
    # the crop codes are exactly the model's encode() of the resized crop and its parsing
    import torch.nn.functional as F

    xt = torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255
    probs = torch.softmax(parser(F.interpolate(xt, size=(64, 64), mode="bilinear", antialias=True)), 1)
    lab = F.interpolate(probs, size=(32, 32), mode="bilinear").argmax(1)
    w = model.encode(F.interpolate(xt, size=(32, 32), mode="bilinear", antialias=True) * 2 - 1, lab)
    torch.testing.assert_close(res.latents, w, atol=1e-5, rtol=1e-5)


def test_parsing_smoothing_is_causal_per_track(tiny):
    model, parser = tiny
    tr = StyleAnimeFaceTranslator(model, parser, parsing_smooth=2)
    a, b = crops(1, seed=1), crops(1, seed=2)
    first = tr(a, [7]).latents
    tr(b, [7])  # track 7 sees b: history now [a, b]
    tr2 = StyleAnimeFaceTranslator(model, parser, parsing_smooth=2)
    assert torch.equal(tr2(a, [9]).latents, first)  # a new track starts fresh: same as the first frame of track 7
    # another track id does not inherit track 7's history
    assert torch.equal(tr(a, [8]).latents, first)
    tr.reset()
    assert torch.equal(tr(a, [7]).latents, first)


def test_bad_inputs(tiny):
    model, parser = tiny
    with pytest.raises(VidanimeError, match="alpha"):
        StyleAnimeFaceTranslator(model, parser, alpha=1.5)
    with pytest.raises(VidanimeError, match="fp16 needs a CUDA device"):
        StyleAnimeFaceTranslator(model, parser, fp16=True)
    tr = StyleAnimeFaceTranslator(model, parser)
    with pytest.raises(VidanimeError, match=r"crops must be \(N, S, S, 3\) uint8"):
        tr(np.zeros((1, 48, 40, 3), np.uint8), [0])
    with pytest.raises(VidanimeError, match="2 track ids for 1 crops"):
        tr(crops(1), [0, 1])


def test_identity_returns_crops():
    x = crops(2)
    res = IdentityFaceTranslator()(x, [0, 1])
    assert np.array_equal(res.crops, x) and res.masks.shape == (2, 48, 48)


class ShiftRefiner:
    """Stands in for LatentRefiner: adds a per-call constant to the codes, and records the calls."""

    def __init__(self):
        self.calls: list[int] = []

    def __call__(self, w, image, labels, steps=None):
        self.calls.append(len(w))
        return w + float(len(self.calls))


def test_refinement_runs_on_keyframes_and_eases_the_correction_per_track(tiny):
    model, parser = tiny
    ref = ShiftRefiner()
    tr = StyleAnimeFaceTranslator(model, parser, parsing_smooth=0, refiner=ref, refine=5, refine_every=3,
                                  refine_ease=2.0)
    plain = StyleAnimeFaceTranslator(model, parser, parsing_smooth=0)
    x = crops(1, seed=4)
    deltas = []
    for _ in range(5):
        deltas.append((tr(x, [3]).latents - plain(x, [3]).latents).mean().item())
    # keyframes at frames 0 and 3 of the track: the first correction (+1) applies at once, the second (+2) is eased
    # in halfway per frame: 1, 1, 1, 1.5, 1.75
    assert ref.calls == [1, 1]
    np.testing.assert_allclose(deltas, [1, 1, 1, 1.5, 1.75], atol=1e-4)
    tr(crops(2, seed=5), [3, 4])  # track 4 is new: its first frame is a keyframe, track 3 (frame 5) is not
    assert ref.calls == [1, 1, 1]
    tr.reset()
    tr(x, [3])
    assert ref.calls == [1, 1, 1, 1]  # after reset, track 3 starts over with a keyframe
    with pytest.raises(VidanimeError, match="refiner"):
        StyleAnimeFaceTranslator(model, parser, refine=3)


def test_recolor_is_applied_to_the_drawing_before_resizing(tiny):
    """With a RegionRecolor the translator returns exactly the recoloured drawing, resized; the codes do not change."""
    import torch.nn.functional as F

    from tests.video.test_recolor import TopHalfHairParser
    from vidanime.video.recolor import RecolorConfig, RegionRecolor

    model, parser = tiny
    x = crops()
    plain = StyleAnimeFaceTranslator(model, parser, parsing_smooth=0)(x, [0, 1, 2])
    rc = RegionRecolor(TopHalfHairParser(), RecolorConfig(strength=1.0))
    res = StyleAnimeFaceTranslator(model, parser, parsing_smooth=0, recolor=rc)(x, [0, 1, 2])
    torch.testing.assert_close(res.latents, plain.latents)
    assert np.abs(res.crops.astype(int) - plain.crops.astype(int)).max() > 20  # recoloured
    rc.reset()
    with torch.no_grad():
        drawn = rc(x, res.parsing, parser.config.label_set, model.decode(res.latents), [0, 1, 2])
    want = F.interpolate(drawn, size=(48, 48), mode="bilinear", antialias=False, align_corners=False)
    want = ((want.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(res.crops, want, atol=1)


def test_upscaler_enlarges_the_drawing_before_it_is_resized_to_the_crop(tiny):
    """With an upscaler the drawing (32 px here) goes through it (x2 → 64 px) and is then resized down to the 48-px
    crop; the codes do not change.  A crop no larger than the drawing skips the upscaler."""
    import torch.nn.functional as F

    from vidanime.models.upscaler import Upscaler, UpscalerConfig

    model, parser = tiny
    torch.manual_seed(1)
    up = Upscaler(UpscalerConfig(channels=8, blocks=1))
    torch.nn.init.normal_(up.tail.weight, std=0.05)  # not the bicubic identity it starts as
    x = crops()
    plain = StyleAnimeFaceTranslator(model, parser, parsing_smooth=0)(x, [0, 1, 2])
    tr = StyleAnimeFaceTranslator(model, parser, parsing_smooth=0, upscaler=up)
    res = tr(x, [0, 1, 2])
    torch.testing.assert_close(res.latents, plain.latents)
    with torch.no_grad():
        big = up(model.decode(res.latents)).clamp(-1, 1)
    assert big.shape[-1] == 64
    want = F.interpolate(big, size=(48, 48), mode="bilinear", antialias=True, align_corners=False)
    want = ((want.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(res.crops, want, atol=1)
    assert np.abs(res.crops.astype(int) - plain.crops.astype(int)).max() > 5  # not the bilinear path
    small = crops(s=24)
    np.testing.assert_array_equal(tr(small, [0, 1, 2]).crops,
                                  StyleAnimeFaceTranslator(model, parser, parsing_smooth=0)(small, [0, 1, 2]).crops)


def test_black_and_white_crops_get_black_and_white_drawings(tiny):
    """A grey crop (an old film; decoded greyscale H.264 has equal channels) gets its drawing's BT.601 luma; a
    colour crop in the same batch keeps the drawing's colours."""
    from vidanime.video.grey import grey_like, is_grey

    model, parser = tiny
    x = crops(2)
    x[0] = x[0].mean(-1, keepdims=True).round().astype(np.uint8)  # a grey face ...
    x[0, :5, :5, 2] += 1  # ... with a little chroma noise, within the tolerance
    colour = StyleAnimeFaceTranslator(model, parser, parsing_smooth=0)(x[1:], [1]).crops[0]
    res = StyleAnimeFaceTranslator(model, parser, parsing_smooth=0)(x, [0, 1])
    assert is_grey(res.crops[0]) and not is_grey(res.crops[1])
    np.testing.assert_array_equal(res.crops[1], colour)
    luma = np.array([0.299, 0.587, 0.114]) @ np.array([200, 100, 50])  # 124.2 → 124
    np.testing.assert_array_equal(grey_like(np.full((2, 2, 3), 7, np.uint8), np.full((1, 1, 3), [200, 100, 50],
                                                                                     np.uint8)), [[[124] * 3]])
    assert round(luma) == 124
    assert not is_grey(x[0]) and is_grey(x[0], tolerance=2)


def test_fill_background_moves_only_the_background_toward_the_colour():
    from vidanime.models.face_translator import ANIME_BACKGROUND, fill_background

    x = torch.tensor([[[[-1.0, 0.5], [0.2, 1.0]]]]).repeat(1, 3, 1, 1)  # (1, 3, 2, 2) in [-1, 1]
    lab = torch.tensor([[[0, 1], [13, 0]]])  # bisenet: background, skin / hair, background
    c = [2 * v - 1 for v in ANIME_BACKGROUND]  # about 0.96, 0.96, 0.95 in [-1, 1]
    half = fill_background(x, lab, "bisenet", 0.5)
    for ch in range(3):  # hand-computed: halfway from the pixel to the colour, the face pixels untouched
        assert half[0, ch, 0, 0].item() == pytest.approx((-1.0 + c[ch]) / 2, abs=1e-6)
        assert half[0, ch, 1, 1].item() == pytest.approx((1.0 + c[ch]) / 2, abs=1e-6)
        assert half[0, ch, 0, 1].item() == pytest.approx(0.5) and half[0, ch, 1, 0].item() == pytest.approx(0.2)
    full = fill_background(x, lab, "bisenet", 1.0)
    assert full[0, :, 0, 0].tolist() == pytest.approx(c, abs=1e-6)
    assert full[0, :, 1, 1].tolist() == pytest.approx(c, abs=1e-6)
    assert fill_background(x, lab, "bisenet", 0.0) is x
    with pytest.raises(VidanimeError, match="background_fill"):
        fill_background(x, lab, "bisenet", 1.5)


class _LeftHalfBackground(torch.nn.Module):
    """A stand-in parser: the left half of every image is background, the right half skin."""

    def __init__(self, config):
        super().__init__()
        self.config = config

    def forward(self, x):
        logits = torch.zeros(x.shape[0], 19, *x.shape[-2:])
        half = x.shape[-1] // 2
        logits[:, 0, :, :half] = 9.0
        logits[:, 1, :, half:] = 9.0
        return logits


def test_background_fill_default_comes_from_the_checkpoint_and_feeds_e_s_filled_crops(tiny):
    from vidanime.models.face_translator import ANIME_BACKGROUND

    model, parser = tiny
    fake = _LeftHalfBackground(parser.config)
    x = crops()
    plain_xm, plain_lab, _ = StyleAnimeFaceTranslator(model, fake, parsing_smooth=0).model_inputs(x, [0, 1, 2])
    saved = dict(model.inference)
    try:
        model.inference["background_fill"] = 1.0
        tr = StyleAnimeFaceTranslator(model, fake, parsing_smooth=0)
        assert tr.background_fill == 1.0
        xm, lab, _ = tr.model_inputs(x, [0, 1, 2])
        assert torch.equal(lab, plain_lab) and (lab[:, :, :15] == 0).all() and (lab[:, :, 17:] == 1).all()
        colour = torch.tensor(ANIME_BACKGROUND).view(1, 3, 1) * 2 - 1
        torch.testing.assert_close(xm[:, :, :, :15].flatten(2), colour.expand(3, 3, 32 * 15))  # background: paper
        assert torch.equal(xm[:, :, :, 17:], plain_xm[:, :, :, 17:])  # the face: as before
        res = tr(x, [0, 1, 2])  # and the codes differ from the unfilled ones
        assert not torch.allclose(res.latents, StyleAnimeFaceTranslator(model, fake, parsing_smooth=0,
                                                                        background_fill=0.0)(x, [0, 1, 2]).latents)
        with pytest.raises(VidanimeError, match="background_fill"):
            StyleAnimeFaceTranslator(model, fake, background_fill=-0.1)
        model.inference["background_fill"] = "white"  # a bad value in a checkpoint: one line, not a traceback
        with pytest.raises(VidanimeError, match="background_fill='white'"):
            StyleAnimeFaceTranslator(model, fake)
    finally:
        model.inference = saved
