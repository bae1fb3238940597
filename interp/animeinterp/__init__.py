"""AnimeInterp: segment-guided matching (SGM), recurrent flow refinement (RFR), softsplat and GridNet synthesis."""
from .model import AnimeInterp, AnimeInterpNet, FeatureExtractor
from .sgm import SegmentGuidedMatching, VGG19Features

__all__ = ["AnimeInterp", "AnimeInterpNet", "FeatureExtractor", "SegmentGuidedMatching", "VGG19Features"]
