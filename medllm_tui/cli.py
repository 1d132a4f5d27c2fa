"""Entry point of ``medllm-tui``.

The headless path (``--run``, ``plugins``, ``data check``) never imports
Textual, so it starts fast and works on a bare GPU box. Every user error is
printed as one line naming file/line/key and mapped to a documented exit code.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

from rich.markup import escape

from medllm_core import __version__
from medllm_core.kernel.errors import ConfigError, ExitCode, MedllmError
from medllm_core.kernel.report_paths import COMPLETION_CHECK_MD, DAY1_SUMMARY

SUBCOMMANDS = ("plugins", "plugin", "data", "attach", "options", "model")


def _parse_sets(values: Sequence[str]) -> dict[str, Any]:
    from medllm_core.kernel.profile import parse_cli_value

    overrides: dict[str, Any] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects KEY=VALUE, got '{item}'", hint="e.g. --set stages.sft.max_steps=10")
        overrides[key.strip()] = parse_cli_value(raw.strip())
    return overrides


def run_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="medllm-tui",
        description="Medical LLM fine-tuning pipeline: SFT → DPO/SimPO/KTO → evaluation → reports.",
        epilog="Subcommands: 'medllm-tui plugins', 'medllm-tui options [STAGE]', "
               "'medllm-tui data check PATH --stage sft', "
               "'medllm-tui attach [RUN_DIR]', 'medllm-tui plugin new NAME', 'medllm-tui model fetch PROFILE'. "
               "Continue an interrupted run: medllm-tui --resume [RUN_DIR] (from the folder's saved profile; "
               "default: the latest run under --output-root) or medllm-tui --run PROFILE --resume [RUN_DIR]. "
               "Exit codes: 0 ok, 1 internal error, 2 config/data error, 3 preflight gate, 4 stage failed, "
               "5 strict check failed, 130 interrupted or stopped (continue with --resume).",
    )
    parser.add_argument("--run", metavar="PROFILE", help="run a profile headless (path or shipped name)")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and train nothing (DRY_RUN=true)")
    parser.add_argument("--output-root", metavar="DIR", help="where reports/ and checkpoints/ go")
    parser.add_argument("--model", metavar="NAME_OR_PATH", help="override model.name_or_path")
    parser.add_argument("--tier", choices=("tiny", "7b", "14b"), help="override model.tier")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override any profile key, e.g. --set stages.sft.max_steps=10 (repeatable)")
    parser.add_argument("--resume", nargs="?", const="", default=None, metavar="RUN_DIR",
                        help="continue an interrupted run in its own folder: RUN_DIR, or without a value the "
                             "latest run of this profile under the output root; stages whose inputs are "
                             "unchanged are not rerun")
    parser.add_argument("--version", action="version", version=f"medllm {__version__}")
    return parser


def cli_overrides(args: argparse.Namespace) -> dict[str, Any]:
    overrides = _parse_sets(args.set)
    if args.output_root:
        overrides["output_root"] = args.output_root
    if args.model:
        overrides["model.name_or_path"] = args.model
    if args.tier:
        overrides["model.tier"] = args.tier
    if args.dry_run:
        overrides["run.dry_run"] = True
    return overrides


def quiet_library_progress_bars() -> None:
    """HF's own tqdm bars would interleave with ours; the events carry the progress."""
    import os
    import warnings

    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    # Library deprecation notices are for us, not for a student watching a run.
    warnings.filterwarnings("ignore", category=FutureWarning)
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def command_run(args: argparse.Namespace, from_folder: bool = False) -> int:
    from rich.console import Console

    from medllm_core.kernel.day1_summary import EXIT_MEANING
    from medllm_core.kernel.headless import HeadlessPrinter
    from medllm_core.kernel.plugin_manager import load_plugins
    from medllm_core.kernel.profile import load_profile
    from medllm_core.kernel.resume import prepare_resume
    from medllm_core.kernel.runner import dry_run, environment_secrets, execute, new_run_info, start_run
    from medllm_core.library.env_file import load_env_file

    console = Console(highlight=False)
    quiet_library_progress_bars()
    load_env_file()
    registry = load_plugins()
    if from_folder:
        from medllm_core.kernel.resume_folder import original_profile_path, resume_folder

        folder, saved = resume_folder(args.resume, args.output_root)
        args.resume = str(folder)
        overrides = {k: v for k, v in cli_overrides(args).items() if k != "output_root"}
        profile = load_profile(saved, cli_overrides=overrides, stages=registry.catalogue())
        profile.source_path = original_profile_path(folder) or profile.source_path
    else:
        profile = load_profile(args.run, cli_overrides=cli_overrides(args), stages=registry.catalogue())
    previous = None
    if args.resume is not None:
        if profile.run.dry_run:
            raise ConfigError("--resume cannot be combined with a dry run (--dry-run / DRY_RUN=true)")
        previous = prepare_resume(profile, args.resume or None)
        run = previous.run
    else:
        run = new_run_info(profile)
    printer = HeadlessPrinter(run.events_path, console=console)
    if previous is not None:
        printer.prime()  # earlier attempts feed the shared view (reused stages' durations) but are not printed
        printer.reader.offset = previous.events_offset  # show this attempt, not the whole history again
    printer.start()
    try:
        if profile.run.dry_run:
            context = start_run(profile, registry, run, secrets=environment_secrets())
            outcome = dry_run(context)
        else:
            outcome = execute(profile, registry, run=run, secrets=environment_secrets(), resume=previous)
    except KeyboardInterrupt:
        from medllm_core.kernel.resume_command import resume_command

        printer.stop()
        print(f"interrupted; continue with: {resume_command(run.run_dir, profile.source_path, sys.argv)}",
              file=sys.stderr)
        return int(ExitCode.INTERRUPTED)
    finally:
        printer.stop()
    meaning = EXIT_MEANING.get(outcome.exit_code, "")
    style = "green" if outcome.exit_code == ExitCode.OK else "red"
    # The message is plain text: "[data.eval_dev]" in it is a profile table, not rich markup.
    console.print(f"[{style}]exit {int(outcome.exit_code)} ({meaning})[/]" +
                  (f": {escape(outcome.message)}" if outcome.message else ""))
    if outcome.exit_code != ExitCode.OK and outcome.message:
        print(f"error: {outcome.message}", file=sys.stderr)  # one unwrapped line for scripts and logs
    for label, path in (("summary", run.reports_dir / DAY1_SUMMARY),
                        ("strict check", run.reports_dir / COMPLETION_CHECK_MD)):
        if not profile.run.dry_run and path.exists():
            console.print(f"{label}: {path}")
    return int(outcome.exit_code)


def command_plugins(argv: Sequence[str]) -> int:
    from rich.console import Console
    from rich.table import Table

    from medllm_core.kernel.plugin_manager import load_plugins

    argparse.ArgumentParser(prog="medllm-tui plugins", description="List plugins and their stages.").parse_args(argv)
    registry = load_plugins()
    console = Console(highlight=False)
    plugins = Table(title="plugins")
    for column in ("plugin", "status", "source", "stages / reason"):
        plugins.add_column(column, overflow="fold")
    for record in registry.plugins:
        status = {"loaded": "[green]loaded[/]", "failed": "[red]failed[/]"}.get(record.status, record.status)
        plugins.add_row(escape(record.name), status, escape(record.source),
                        escape(", ".join(record.stages) or record.reason))
    console.print(plugins)
    stages = Table(title="stages (run order follows kind, then dependencies)")
    for column in ("stage", "kind", "starts from / requires", "plugin", "description"):
        stages.add_column(column, overflow="fold")
    for name, spec in registry.stages.items():
        # A training method continues another stage's adapter without "requiring" it: show that edge too.
        needs = [f"{spec.starts_from()} adapter"] if spec.starts_from() else []
        needs += [f"requires {stage}" for stage in spec.requires]
        stages.add_row(escape(name), str(spec.kind), escape(", ".join(needs)) or "-", escape(registry.origin[name]),
                       escape(spec.description))
    console.print(stages)
    for warning in registry.warnings:
        console.print(f"[yellow]warning:[/] {escape(warning)}")
    return 0


def command_options(argv: Sequence[str]) -> int:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from medllm_core.kernel.plugin_manager import load_plugins
    from medllm_core.kernel.schema import closest
    from medllm_tui.stage_forms import options_rows

    parser = argparse.ArgumentParser(prog="medllm-tui options",
                                     description="List every stage's [stages.<name>] keys: type, default, help.")
    parser.add_argument("stage", nargs="?", help="only this stage")
    args = parser.parse_args(argv)
    registry = load_plugins()
    if args.stage and args.stage not in registry.stages:
        guess = closest(args.stage, registry.stages)
        raise ConfigError(f"unknown stage '{args.stage}'",
                          hint=f"did you mean '{guess}'?" if guess else f"stages: {', '.join(registry.stages)}")
    console = Console(highlight=False)
    for name, rows in options_rows(registry, args.stage):
        table = Table(title=escape(f"[stages.{name}]  (plugin {registry.origin[name]})"), title_justify="left")
        for column in ("key", "type", "default", "help"):
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(*(escape(cell) for cell in row), style="dim" if row[0] in ("enabled", "required") else None)
        console.print(table)
    return 0


def command_data(argv: Sequence[str]) -> int:
    from medllm_core.library.data_report import check_data_file, render_data_report

    parser = argparse.ArgumentParser(prog="medllm-tui data", description="Inspect data files before training.")
    sub = parser.add_subparsers(dest="action", required=True)
    check = sub.add_parser("check", help="validate a data file and summarise it")
    check.add_argument("path", nargs="?", default="",
                       help="JSON/JSONL file, or for eval also CSV or a folder of CSVs (omit with --dataset-info)")
    check.add_argument("--stage", default="sft",
                       choices=("sft", "preference", "dpo", "simpo", "kto", "eval", "eval_mcq"),
                       help="which stage the data is for (eval / eval_mcq: multiple-choice benchmark items)")
    check.add_argument("--format", default="auto", help="force a format instead of detecting it")
    check.add_argument("--dataset-info", help="LLaMA-Factory dataset_info.json")
    check.add_argument("--dataset-name", help="entry in dataset_info.json")
    check.add_argument("--tokenizer", help="tokenizer folder or cached hub id for token lengths")
    check.add_argument("--max-length", type=int, help="count rows longer than this many tokens (the stage's "
                       "max_length) and, for preference stages, prompts over the prompt budget")
    check.add_argument("--max-prompt-length", type=int, help="prompt budget (default: half of --max-length)")
    check.add_argument("--max-problems", type=int, default=50, help="problems to print (all are counted)")
    args = parser.parse_args(argv)
    if not args.path and not args.dataset_info:
        raise ConfigError("data check needs a PATH or --dataset-info with --dataset-name")
    if args.max_length is not None and args.max_length <= 0:
        raise ConfigError(f"--max-length must be > 0 (got {args.max_length})")
    if args.max_prompt_length is not None and not 0 < args.max_prompt_length < (args.max_length or 0):
        raise ConfigError("--max-prompt-length needs --max-length and must be > 0 and < it")
    report = check_data_file(args.path, args.stage, args.format, dataset_info=args.dataset_info,
                             dataset_name=args.dataset_name, tokenizer=args.tokenizer, max_length=args.max_length,
                             max_prompt_length=args.max_prompt_length)
    print(render_data_report(report, args.max_problems))
    return int(ExitCode.CONFIG_ERROR) if report["errors"] else 0


def _textual_missing() -> ConfigError | None:
    import importlib.util

    if importlib.util.find_spec("textual") and importlib.util.find_spec("textual_plotext"):
        return None
    return ConfigError("the interactive TUI needs Textual", hint="pip install 'medllm[tui]' "
                       "(the headless 'medllm-tui --run PROFILE' works without it)")


def launch_app(attach: str | None = None, output_root: str | None = None) -> int:
    from pathlib import Path

    missing = _textual_missing()
    if missing is not None:
        raise missing
    # Without a terminal Textual would draw into a pipe and wait forever for keys nobody can press.
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise ConfigError("the interactive TUI needs a terminal (stdin and stdout are not a TTY)",
                          hint="run headless with 'medllm-tui --run PROFILE'")
    from medllm_tui.app import run_app  # Textual is imported here and only here

    return run_app(attach=Path(attach).expanduser().resolve() if attach else None,
                   output_root=Path(output_root).expanduser().resolve() if output_root else None)


def command_attach(argv: Sequence[str]) -> int:
    from pathlib import Path

    parser = argparse.ArgumentParser(prog="medllm-tui attach",
                                     description="Open the dashboard of a running or finished run.")
    parser.add_argument("run_dir", nargs="?", default="", metavar="RUN_DIR",
                        help="a folder under <output_root>/reports/runs/ (default: the most recent run)")
    parser.add_argument("--output-root", metavar="DIR", default=".", help="where to look for recent runs")
    args = parser.parse_args(argv)
    if args.run_dir:
        run_dir = Path(args.run_dir).expanduser().resolve()
        if not (run_dir / "events.jsonl").is_file():
            raise ConfigError(f"not a medllm run folder (no events.jsonl): {run_dir}",
                              hint="pass a folder under <output_root>/reports/runs/")
    else:
        from medllm_tui.runs import latest_run

        found = latest_run(Path(args.output_root).expanduser().resolve())
        if found is None:
            raise ConfigError(f"no runs under {Path(args.output_root).resolve() / 'reports' / 'runs'}",
                              hint="medllm-tui attach RUN_DIR, or --output-root DIR")
        run_dir = found
    return launch_app(attach=str(run_dir), output_root=args.output_root)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Before any torch import: expandable segments keep the CUDA cache from fragmenting. Without it a SimPO run
    # planned to its budget died on an H200 with 2.3 GiB "reserved but unallocated" (bench --suite pref). A
    # user's own setting wins; training ranks started by accelerate launch inherit it.
    os.environ.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")
    try:
        if argv and argv[0] == "plugins":
            return command_plugins(argv[1:])
        if argv and argv[0] == "data":
            return command_data(argv[1:])
        if argv and argv[0] == "options":
            return command_options(argv[1:])
        if argv and argv[0] == "plugin":
            from medllm_tui.plugin_scaffold import command_plugin

            return command_plugin(argv[1:])
        if argv and argv[0] == "attach":
            return command_attach(argv[1:])
        if argv and argv[0] == "model":
            from medllm_tui.model_command import command_model

            return command_model(argv[1:])
        args = run_parser().parse_args(argv)
        if args.resume is not None and not args.run:
            return command_run(args, from_folder=True)  # the folder's own effective_profile.toml
        if args.run:
            return command_run(args)
        return launch_app(output_root=args.output_root)
    except MedllmError as exc:
        print(f"error: {exc.render()}", file=sys.stderr)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return int(ExitCode.INTERRUPTED)


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
