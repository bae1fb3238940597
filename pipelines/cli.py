"""The ``vidanime`` command: parses arguments and calls pipelines, nothing else.

Subcommands live in ``pipelines/commands/<name>.py`` as a click object called ``cli`` and are imported only when
invoked (so ``vidanime --help`` stays fast without importing torch).  User errors (:class:`VidanimeError`) become a
one-line message and exit status 2; an interrupt exits 130.  The CPU thread policy (:mod:`vidanime.threads`) is set
before any command imports torch.
"""
from __future__ import annotations

import errno
import importlib
import logging
import sys

import click

from vidanime import __version__

# name -> (module under pipelines.commands, one-line help shown in `vidanime --help`)
COMMANDS: dict[str, tuple[str, str]] = {
    "batch": ("batch", "Translate every video in a folder (mirrored outputs, resumable manifest, --jobs/--ray)."),
    "edit": ("edit", "Edit a face crop: new structure from an edited parsing map, appearance mixing, optional PTI."),
    "eval": ("eval", "Evaluate translations offline: FID/KID/LPIPS-s/-d, parser mIoU, structure/appearance kept, "
                     "flicker."),
    "finetune": ("finetune", "Fine-tune StyleAnime on one clip (L_lcsc + L_fic + L_base, paper §6.3.3); "
                             "resumable run folder."),
    "facebank": ("facebank", "Build a FaceBank of generator latent codes for FaceBank aggregation."),
    "image": ("image", "Translate face images (file or folder) with StyleAnime; manga with a reference (image manga)."),
    "pack-data": ("pack_data", "Pack all training images (anime, portraits + masks, clip frames) into one file "
                               "for train-all."),
    "parse": ("parse", "Face parsing maps (label PNGs, colour overlays) for images or folders."),
    "parser": ("parser", "Train, evaluate (Table 1 metrics), pseudo-label and import face parsers."),
    "info": ("info", "Show what vidanime reads from a video: streams, fps, frames, rotation, audio."),
    "interp": ("interp", "Frame interpolation: run two images or --video (double fps), train, eval."),
    "transcode": ("transcode", "Re-encode (and trim) a clip with H.264, keeping timing and audio."),
    "translate": ("translate", "Translate the faces of a video (real to anime or back), keeping timing and audio."),
    "serve": ("serve", "Start the web app (Gradio, pip install '.[web]'): upload, translate, watch, download; "
                       "localhost only."),
    "train": ("train", "Train StyleAnime encoders + discriminators on a frozen generator (run folders, resume, "
                       "torchrun)."),
    "train-gan": ("train_gan", "Train or fine-tune a StyleGAN2 generator (run folders, resume)."),
    "train-upscaler": ("train_upscaler", "Train the learned x2 upscaler of the generator's drawings (run folders, "
                                         "resume)."),
    "train-all": ("train_all", "Train the whole model set to a wall-clock budget (--budget 9m --device cuda), "
                               "then export it."),
    "weights": ("weights", "List, verify and install model sets (train-all output); import public checkpoints."),
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(COMMANDS))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in COMMANDS:
            module = importlib.import_module(f"pipelines.commands.{COMMANDS[name][0]}")
            return module.cli
        return super().get_command(ctx, name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][1]) for name in sorted(COMMANDS)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="vidanime")
@click.option("-v", "--verbose", count=True, help="More log output (-v debug).")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors (no progress bars).")
@click.option("--threads", type=click.IntRange(min=1), default=None, metavar="N",
              help="CPU threads for torch and OpenCV [default: OMP_NUM_THREADS if set, else the cores this process "
                   "may use; batch: cores / --jobs per job]. Idle threads sleep (OMP_WAIT_POLICY=PASSIVE) so "
                   "vidanime shares the machine with other work without slowing down.")
@click.pass_context
def main(ctx: click.Context, verbose: int, quiet: bool, threads: int | None) -> None:
    """vidanime: turn the faces in a video into anime characters (StyleAnime), frame-coherent.

    \b
    Examples:
      vidanime translate in.mp4 out.mp4
      vidanime train-gan --config configs/demo_stylegan2.yaml
      vidanime weights list
    """
    from vidanime.log import setup_logging
    from vidanime.threads import apply_thread_policy

    setup_logging(-1 if quiet else verbose)
    ctx.ensure_object(dict)["quiet"] = quiet  # commands hide their progress bars too (options.show_progress)
    if threads is not None:  # before any command imports torch (commands import it when they run)
        apply_thread_policy(threads)


class _Terminated(KeyboardInterrupt):
    """SIGTERM / SIGHUP, raised like Ctrl-C so every temporary output is removed on the way out."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _raise_terminated(signum: int, frame: object) -> None:
    raise _Terminated(signum)


def run() -> None:
    """Console-script entry point: run the CLI, turning user errors into one line and a non-zero exit; SIGTERM and
    SIGHUP stop it like Ctrl-C (temporary outputs removed) with exit status 128 + the signal number."""
    import signal

    from vidanime.errors import VidanimeError
    from vidanime.threads import apply_thread_policy

    apply_thread_policy()  # before torch loads OpenMP: see vidanime/threads.py
    for sig in (signal.SIGTERM, getattr(signal, "SIGHUP", None)):
        if sig is not None:
            signal.signal(sig, _raise_terminated)
    try:
        # Without standalone mode click returns the code a command exits with (ctx.exit(1) in batch: some files
        # failed) instead of raising: pass it on, or scripts see 0 for a failed batch.
        rc = main.main(standalone_mode=False)
        if isinstance(rc, int) and not isinstance(rc, bool) and rc != 0:
            sys.exit(rc)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except (click.exceptions.Abort, _Terminated) as exc:
        # click turns a KeyboardInterrupt inside a command into Abort: the signal, if any, is its cause
        term = exc if isinstance(exc, _Terminated) else exc.__cause__
        if isinstance(term, _Terminated):
            click.echo(f"Terminated ({signal.Signals(term.signum).name}).", err=True)
            sys.exit(128 + term.signum)
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
    except VidanimeError as exc:
        logging.getLogger("vidanime").debug("user error", exc_info=True)
        click.echo(f"error: {' '.join(str(exc).split())}", err=True)
        sys.exit(2)
    except OSError as exc:
        message = os_error_message(exc)
        if message is None:
            raise
        logging.getLogger("vidanime").debug("system error", exc_info=True)
        click.echo(f"error: {message}", err=True)
        sys.exit(1)


# errno -> what the user can do about it (PyAV's av.error.OSError and our own writes both raise OSError subclasses)
_OS_ERRORS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EMFILE: "too many open files",
    errno.EISDIR: "an output path is a folder (expected a file name)",
}


def os_error_message(exc: OSError) -> str | None:
    """A one-line message for the system errors a user can fix (full disk, permissions, read-only file system);
    None for anything else, which stays a traceback (a bug to report)."""
    what = _OS_ERRORS.get(exc.errno or -1)
    if what is None:
        return None
    where = exc.filename or getattr(exc, "filename2", None)
    return what + (f": {where}" if where else "")


if __name__ == "__main__":
    run()
