"""`vidanime train`: StyleAnime base training (encoders + discriminators, frozen generator)."""
from __future__ import annotations

import click

from vidanime.config import options_to_overrides

from .options import DEVICE


@click.command(name="train")
@click.option("--config", "config", default=None, type=click.Path(path_type=str),
              help="configs/styleanime_p2a.yaml, configs/styleanime_a2p.yaml, ...")
@click.option("--resume", default=None, help="'auto' (latest run of this config), a run folder or a train-*.pt file.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override a config value (repeatable).")
@click.option("--lpips-backbone", default=None,
              help="ImageNet trunk weights for LPIPS (torchvision alexnet .pth); 'random' for tests/demos only.")
@click.option("--generator", default=None, help="Target-domain StyleGAN2 checkpoint (overrides the config).")
@click.option("--device", type=DEVICE, default=None, help="auto, cpu, cuda or cuda:N (overrides train.device).")
@click.option("--amp", is_flag=True, default=False, help="bfloat16 mixed precision (CUDA only).")
@click.option("--skip-bad", is_flag=True, default=False, help="Log and skip unreadable or unmatched data files.")
def cli(config: str | None, resume: str | None, sets: tuple[str, ...], lpips_backbone: str | None,
        generator: str | None, device: str | None, amp: bool, skip_bad: bool) -> None:
    """Train StyleAnime encoders E_p, E_s with D1/D2 on a frozen target-domain generator (paper §4.2).

    Multi-GPU: torchrun --nproc_per_node N -m pipelines.cli train --config ...
    """
    from pipelines.train_styleanime import load_train_config, train_styleanime

    flag = True if skip_bad else None
    overrides = options_to_overrides(sets, ("loss.lpips_backbone", lpips_backbone), ("generator", generator),
                                     ("train.device", device), ("train.amp", True if amp else None),
                                     ("target.skip_bad", flag), ("source.skip_bad", flag))
    cfg = load_train_config(config, overrides) if config is not None else None
    run = train_styleanime(cfg, resume=resume, overrides=overrides)
    if run is not None:
        click.echo(f"run folder: {run.path}")
