"""The `ktools` command: thin wrappers over the package.

Each subcommand lives in its own module under `ktools.cli` exposing
`register(parser)` (adds its arguments) and `run(args) -> int`. Modules are
imported only when their command runs, so `ktools --help` stays fast and a
missing optional extra only breaks the command that needs it.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

# command name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("ktools.cli.run", "execute the step notebooks in order with papermill"),
    "status": ("ktools.cli.status", "show settings (key masked) and which step outputs exist"),
    "serve-teacher": ("ktools.cli.serve_teacher", "serve the embedded teacher on an OpenAI-compatible API"),
    "prepare": ("ktools.cli.prepare", "convert + chunk + seed in one go (step 02)"),
    "convert-docs": ("ktools.cli.prepare", "convert documents to markdown (step 02)"),
    "chunk": ("ktools.cli.prepare", "chunk converted markdown by tokens (step 02)"),
    "seed": ("ktools.cli.prepare", "build the seed dataset with ICL fields (step 02)"),
    "generate": ("ktools.cli.generate", "generate Q&A datasets with the teacher (step 03)"),
    "combine": ("ktools.cli.combine", "combine per-document Q&A files into training_data.json"),
    "convert": ("ktools.cli.convert", "convert Q&A to alpaca / messages / qna.yaml"),
    "mix": ("ktools.cli.mix", "build training mixes at several cut sizes (step 04)"),
    "train": ("ktools.cli.train", "fine-tune the student (step 05)"),
    "evaluate": ("ktools.cli.evaluate", "evaluate base vs fine-tuned (steps 01/06)"),
    "pipeline": ("ktools.cli.pipeline", "Kubeflow pipeline of steps 02-05: compile it, or run it locally"),
}


def _load(module_name: str):
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            return None
        raise


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ktools", description="Knowledge-tuning toolkit.")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        if only is not None and name == only:
            module = _load(module_name)
            if module is None:
                continue
            if hasattr(module, "register_command"):
                module.register_command(name, cmd)
            else:
                module.register(cmd)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(only=command if command in COMMANDS else None)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING - 10 * min(args.verbose, 2) if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    if not args.command:
        parser.print_help()
        return 2
    module = _load(COMMANDS[args.command][0])
    if module is None:
        print(f"ktools {args.command}: not available in this installation yet", file=sys.stderr)
        return 2
    runner = getattr(module, "run_command", None)
    try:
        return int((runner(args.command, args) if runner else module.run(args)) or 0)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except bad_input_errors() as exc:
        # Bad input a command did not catch itself: one line naming the file/setting, exit 2, no traceback.
        print(f"ktools {args.command}: {one_line(exc)}", file=sys.stderr)
        return 2


def bad_input_errors() -> tuple[type[BaseException], ...]:
    """Errors that mean the user's input (a path, a setting, a file's content) is wrong.
    Their messages name the file or setting; a bug's traceback is not one of them."""
    from ktools.config import ConfigError
    from ktools.documents.errors import DocumentError
    from ktools.io import JsonlError

    return (ConfigError, JsonlError, DocumentError, FileNotFoundError, NotADirectoryError, IsADirectoryError)


def one_line(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
