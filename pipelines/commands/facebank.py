"""`vidanime facebank build`: sample a FaceBank of W codes from a generator's mapping network."""
from __future__ import annotations

import click

from .options import DEVICE


@click.group(name="facebank")
def cli() -> None:
    """Build FaceBanks (paper §4.3) for FaceBank aggregation."""


@cli.command(name="build")
@click.option("--generator", "-g", required=True, type=click.Path(),
              help="Generator: a vidanime.stylegan2 or vidanime.styleanime checkpoint, "
                   "or an official StyleAnime/pSp .pt.")
@click.option("--size", "-n", default=50_000, show_default=True, type=int, help="Number of codes.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed for z.")
@click.option("--out", "-o", required=True, type=click.Path(), help="Output bank file (.pt).")
@click.option("--fp16", is_flag=True, help="Store the codes in float16 (half the file size).")
@click.option("--batch-size", default=1000, show_default=True, type=int, help="Mapping-network batch.")
@click.option("--device", type=DEVICE, default="cpu", show_default=True, help="torch device, e.g. cuda.")
def build(generator: str, size: int, seed: int, out: str, fp16: bool, batch_size: int, device: str) -> None:
    """Map SIZE seeded z through the generator's mapping network and save the W codes to OUT."""
    from pipelines.facebank import build_facebank_from_file

    bank = build_facebank_from_file(generator, out, n_codes=size, seed=seed, fp16=fp16, batch_size=batch_size,
                                    device=device)
    click.echo(f"wrote {out}: {len(bank)} codes ({bank.config.space}, {bank.config.n_latent} W+ layers, seed {seed})")
