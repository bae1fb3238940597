"""The `vidanime` command: help lists every registered subcommand; user errors are one line, exit 2, no traceback."""
import subprocess
import sys

import pytest

from pipelines.cli import COMMANDS


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "pipelines.cli", *args], capture_output=True, text=True, timeout=120)


def test_help_lists_commands_without_importing_torch():
    code = "import sys; from pipelines.cli import main; sys.argv=['vidanime','--help'];\n" \
           "try:\n    main()\nexcept SystemExit:\n    pass\nprint('torch' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    for name in COMMANDS:
        assert name in r.stdout
    assert r.stdout.strip().endswith("False")  # help stays fast: torch not imported


@pytest.mark.slow
def test_every_subcommand_has_help():
    for name in COMMANDS:
        r = run_cli(name, "--help")
        assert r.returncode == 0, (name, r.stderr)
        assert "Usage:" in r.stdout and len(r.stdout.splitlines()) > 3


@pytest.mark.slow
def test_user_error_is_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("modle: {}\n")
    r = run_cli("train-gan", "--config", str(bad), "--run-dir", str(tmp_path / "runs"))
    assert r.returncode == 2
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "modle" in lines[0], r.stderr
    assert "Traceback" not in r.stderr


def test_option_literals_match_the_library():
    """options.py copies a few names so that `--help` does not import torch; they must equal the library's."""
    import click

    from pipelines import finetune, translate
    from pipelines.commands import options
    from vidanime.video import detect

    assert options.DETECTORS == list(detect.DETECTORS)
    assert tuple(options.TEMPORAL_OPTION(click.command()(lambda temporal: None)).params[0].type.choices) == \
        translate.TEMPORAL_MODES
    assert options.FINETUNE_AUTO == finetune.FINETUNE_AUTO
    from vidanime.video.faces import FaceConfig

    render = options.RENDER_OPTIONS(click.command()(lambda **kw: None)).params
    assert next(p.default for p in render if p.name == "detect_every") == FaceConfig().detect_every
