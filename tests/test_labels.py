"""Label sets: remaps against the MANIFEST's table, bijectivity, lip merging, flips, one-hot."""
import json

import numpy as np
import pytest
import torch

from vidanime import labels as L
from vidanime.errors import VidanimeError

# From ../shared/assets/MANIFEST.md (checked on the data there): bisenet_id = TABLE[celebamask_id].
MANIFEST_TO_BISENET = [0, 1, 10, 6, 4, 5, 2, 3, 7, 8, 11, 12, 13, 17, 18, 9, 15, 14, 16]


def test_celebamask_to_bisenet_matches_manifest():
    assert L.remap_table("celebamask", "bisenet").tolist() == MANIFEST_TO_BISENET


def test_celebamask_to_bisenet_matches_labels_json(assets):
    meta = json.loads((assets / "faces" / "labels.json").read_text())
    assert L.remap_table("celebamask", "bisenet").tolist() == list(meta["to_bisenet_order"])


def test_19_class_remaps_are_bijective_and_round_trip():
    x = np.arange(19).reshape(1, 19)
    there = L.remap(x, "celebamask", "bisenet")
    assert sorted(there.ravel().tolist()) == list(range(19))
    assert np.array_equal(L.remap(there, "bisenet", "celebamask"), x)


def test_17_classes_merge_lips_into_mouth():
    t = L.remap_table("bisenet", "danbooru")
    mouth = L.DANBOORU.index("mouth")
    assert t[L.BISENET.index("mouth")] == t[L.BISENET.index("u_lip")] == t[L.BISENET.index("l_lip")] == mouth
    assert len(set(t.tolist())) == 17  # every Danbooru class is reached
    # hand-checked ids from DESIGN.md: bisenet neck 14 -> danbooru 12, hair 17 -> 15, hat 18 -> 16
    assert (t[14], t[17], t[18]) == (12, 15, 16)
    # 17 -> 19 is one-to-one on shared names and undoes the 19 -> 17 map on every non-lip id
    back = L.remap_table("danbooru", "bisenet")
    keep = [i for i, n in enumerate(L.BISENET) if n not in ("u_lip", "l_lip")]
    assert [back[t[i]] for i in keep] == keep


def test_remap_torch_and_out_of_range():
    x = torch.tensor([[0, 13, 18]])
    assert L.remap(x, "celebamask", "bisenet").tolist() == [[0, 17, 16]]
    with pytest.raises(VidanimeError, match="outside the 19 classes"):
        L.remap(torch.tensor([[19]]), "celebamask", "bisenet")


def test_flip_swaps_left_and_right():
    m = np.zeros((2, 4), np.uint8)
    m[0, 0] = L.BISENET.index("l_eye")
    m[1, 3] = L.BISENET.index("r_brow")
    f = L.flip_lr(m, "bisenet")
    assert f[0, 3] == L.BISENET.index("r_eye") and f[1, 0] == L.BISENET.index("l_brow")
    assert np.array_equal(L.flip_lr(f, "bisenet"), m)


def test_one_hot_and_label_count_error():
    oh = L.one_hot(torch.tensor([[[0, 16]]]), "danbooru")
    assert oh.shape == (1, 17, 1, 2) and oh[0, 16, 0, 1] == 1 and oh.sum() == 2
    with pytest.raises(VidanimeError, match="17 classes"):
        L.one_hot(torch.tensor([[[17]]]), "danbooru")


def test_resize_is_nearest():
    m = np.array([[0, 5], [17, 3]], np.uint8)
    r = L.resize_labels(m, (64, 64))
    assert set(np.unique(r).tolist()) == {0, 3, 5, 17}


def test_colorize_same_colour_for_same_name():
    assert np.array_equal(L.palette("celebamask")[13], L.palette("bisenet")[17])  # hair
    assert L.colorize(np.array([[17]]), "bisenet").shape == (1, 1, 3)


def test_lr_swap_table_swaps_only_left_right_pairs():
    t = L.lr_swap_table("bisenet")  # BiSeNet: 2/3 brows, 4/5 eyes, 7/8 ears
    assert t.tolist() == [0, 1, 3, 2, 5, 4, 6, 8, 7] + list(range(9, 19))
    assert L.lr_swap_table("celebamask")[4] == 5 and L.lr_swap_table("celebamask")[6] == 7
