"""`vidanime weights`: list bundled models, verify their checksums, install a trained set, import public checkpoints."""
from __future__ import annotations

import click


@click.group(name="weights")
def cli() -> None:
    """Bundled model weights: list them, verify checksums, import public checkpoints into vidanime's format."""


@cli.command(name="list")
def list_() -> None:
    """List bundled models with format, size and whether the file's sha256 matches."""
    from vidanime.registry import available_models, verify

    models = available_models()
    if not models:
        click.echo("no bundled models (train them with `make train-demo`)")
        return
    for e in models:
        size = f"{e.path.stat().st_size / 2**20:.1f} MiB" if e.path.is_file() else "missing"
        status = "ok" if verify(e) else "CHECKSUM MISMATCH" if e.path.is_file() else "MISSING"
        click.echo(f"{e.name:24s} {e.format:22s} {size:>10s}  sha256 {e.sha256[:12]}…  {status}  {e.description}")


@cli.command()
def verify() -> None:
    """Check every bundled file against its recorded sha256; exit 1 on any mismatch."""
    from vidanime.registry import available_models, verify as verify_entry

    bad = [e.name for e in available_models() if not verify_entry(e)]
    for e in available_models():
        click.echo(f"{e.name}: {'ok' if e.name not in bad else 'FAILED'}")
    if bad:
        raise click.ClickException(f"checksum check failed for: {', '.join(bad)}")


@cli.command()
@click.argument("set_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--force", is_flag=True, help="Replace bundled files that differ from the set's.")
def install(set_dir: str, force: bool) -> None:
    """Install the model set in SET_DIR (the --out folder of `vidanime train-all`) as the bundled models, after
    checking every file's sha256."""
    from vidanime.registry import install_set

    names = install_set(set_dir, force=force)
    click.echo(f"installed {len(names)} model(s): {', '.join(names)}")


# kind -> (module, function converting a public file into our format: f(src, dst) -> Path, what it reads)
IMPORTERS: dict[str, tuple[str, str, str]] = {
    "rosinality": ("vidanime.importers.rosinality", "convert_rosinality",
                   "rosinality stylegan2-pytorch .pt ({g, d, g_ema, ...} or {g_ema, latent_avg}) → vidanime.stylegan2"),
    "styleanime": ("vidanime.importers.styleanime_official", "import_official_styleanime",
                   "official StyleAnime .pt (state_dict encoder.encoder_1/2.*, decoder.*, latent_avg) "
                   "→ vidanime.styleanime"),
}


@cli.command(name="import")
@click.argument("kind", type=click.Choice(sorted(IMPORTERS)))
@click.argument("src", type=click.Path(exists=True, dir_okay=False))
@click.argument("dst", type=click.Path(dir_okay=False))
def import_(kind: str, src: str, dst: str) -> None:
    """Convert a public checkpoint SRC of KIND into vidanime's self-describing format at DST.

    \b
    Kinds:
      rosinality   rosinality stylegan2-pytorch .pt → vidanime.stylegan2 generator
      styleanime   official StyleAnime .pt → vidanime.styleanime (encoders + generator)
    """
    import importlib

    module, func, _ = IMPORTERS[kind]
    out = getattr(importlib.import_module(module), func)(src, dst)
    click.echo(f"wrote {out}")
