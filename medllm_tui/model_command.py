"""``medllm-tui model fetch PROFILE``: get the profile's model onto this machine before the run (headless)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence


def command_model(argv: Sequence[str]) -> int:
    from medllm_core.kernel.plugin_manager import load_plugins
    from medllm_core.kernel.profile import load_profile
    from medllm_core.library.env_file import load_env_file
    from medllm_core.library.model_fetch import fetch_for_profile, human_size
    from medllm_core.library.model_source import source_environment
    from medllm_tui.cli import _parse_sets

    parser = argparse.ArgumentParser(prog="medllm-tui model", description="Get the profile's model before a run.")
    sub = parser.add_subparsers(dest="action", required=True)
    fetch = sub.add_parser("fetch", help="download the model (HF hub / HF_ENDPOINT mirror or ModelScope), "
                                         "check free disk first, resume, verify hashes")
    fetch.add_argument("profile", help="profile path or shipped name")
    fetch.add_argument("--model", metavar="NAME_OR_PATH", help="override model.name_or_path")
    fetch.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a profile key")
    fetch.add_argument("--no-progress", action="store_true", help="no progress bar (logs, CI)")
    args = parser.parse_args(argv)
    overrides = _parse_sets(args.set)
    if args.model:
        overrides["model.name_or_path"] = args.model
    load_env_file()
    profile = load_profile(args.profile, cli_overrides=overrides, stages=load_plugins().catalogue())
    env = source_environment()
    if env:
        print("environment: " + ", ".join(f"{k}={v}" for k, v in env.items()))
    how, result = fetch_for_profile(profile, progress=not args.no_progress)
    if result is None:
        print(f"{profile.model.name_or_path}: {how}")
        return 0
    if result.files:  # the HF path counts and verifies; ModelScope's package does its own download
        print(f"{profile.model.name_or_path}: {how}; {len(result.files)} files, "
              f"{human_size(result.downloaded_bytes)} downloaded, {result.verified} verified")
    else:
        print(f"{profile.model.name_or_path}: {how}")
    print(f"local copy: {result.local_path} (the run uses it)")
    return 0
