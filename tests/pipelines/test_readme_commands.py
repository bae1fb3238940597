"""Every ``vidanime`` command the README shows parses as written (command names, options, choices), and every model it
names — or leaves to the default of its direction — is bundled, so a documented command cannot fail on a missing
model or a renamed option again.  The commands themselves are run by the tests of each pipeline (on tiny models
where the bundled ones are too slow); the a2p one runs here on a shipped anime clip."""
import re
import shlex
from pathlib import Path

import click
import pytest

from pipelines.cli import main as vidanime
from pipelines.translate import DEFAULT_MODELS
from vidanime.registry import available_models

README = Path(__file__).resolve().parents[2] / "README.md"
MODEL_OPTIONS = ("-c", "--checkpoint", "--parser")


def readme_commands() -> list[str]:
    """The ``vidanime …`` lines of the README's code blocks (comments cut) and its inline commands that name a file or
    folder (``in.mp4``, ``configs/x.yaml``, ``DIR``); not the ``[--a|--b]`` synopses nor mentions of one option."""
    text = README.read_text(encoding="utf-8")
    found = []
    for block in re.findall(r"```[a-z]*\n(.*?)```", text, re.S):
        for line in block.splitlines():
            line = line.split("  #")[0].strip()
            if line.startswith("vidanime "):
                found.append(line)
    for inline in re.findall(r"`(vidanime [^`]*)`", text):
        tokens = shlex.split(inline)[1:]
        if not re.search(r"[\[|]|/eval$", inline) and any("." in t or "/" in t or t.isupper() for t in tokens):
            found.append(inline)
    return sorted(set(found))


def _parse(line: str) -> tuple[click.Command, click.Context]:
    """Resolve the (sub)command of ``line`` and parse its arguments as click would; files need not exist."""
    argv = shlex.split(line)[1:]
    ctx = click.Context(vidanime, info_name="vidanime")
    cmd: click.Command = vidanime
    while isinstance(cmd, click.Group):
        name, argv = argv[0], argv[1:]
        sub = cmd.get_command(ctx, name)
        assert sub is not None, f"{line}: no command {name!r}"
        cmd, ctx = sub, click.Context(sub, info_name=name, parent=ctx)
    try:
        return cmd, cmd.make_context(ctx.info_name, argv, parent=ctx.parent)
    except click.BadParameter as exc:
        if "does not exist" in exc.format_message():  # an example path: fine
            return cmd, None
        raise


COMMANDS = readme_commands()


def test_the_readme_shows_commands_and_a_wrong_one_fails():
    assert len(COMMANDS) >= 30 and any("--direction a2p" in c for c in COMMANDS)
    with pytest.raises(click.NoSuchOption):
        _parse("vidanime translate in.mp4 out.mp4 --bogus")
    with pytest.raises(click.BadParameter):
        _parse("vidanime translate in.mp4 out.mp4 --direction p2b")


@pytest.mark.parametrize("line", COMMANDS)
def test_readme_command_parses_and_names_bundled_models(line):
    _parse(line)
    argv = shlex.split(line)
    bundled = {m.name for m in available_models()}
    for opt, value in zip(argv, argv[1:]):
        if opt in MODEL_OPTIONS and "/" not in value and "." not in value:
            assert value in bundled, f"{line}: {value} is not a bundled model"
    if "--direction" in argv and not set(argv) & {"-c", "--checkpoint"}:
        direction = argv[argv.index("--direction") + 1]
        assert DEFAULT_MODELS[direction][0] in bundled, f"{line}: no bundled {direction} model"
