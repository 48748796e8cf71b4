"""What ``fkd-hf push-labels`` and ``fkd-hf push-student`` share: the folder and repo options, and the push itself."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from .arguments import CommandParser


def push_parser(prog: str, description: str, directory_help: str, repo_type: str) -> argparse.ArgumentParser:
    """A parser with the folder argument and the options of every push: repo id, visibility, branch, message."""
    parser = CommandParser(prog=prog, description=description)
    parser.add_argument("directory", help=directory_help)
    parser.add_argument(
        "--repo-id", "--repo_id", dest="repo_id", required=True, help=f"Hub {repo_type} repo: user/name."
    )
    parser.add_argument("--private", action="store_true", default=None, help="Create the repo private.")
    parser.add_argument("--revision", default=None, help="Branch to push to (created if missing); default main.")
    parser.add_argument("--commit-message", "--commit_message", dest="commit_message", default=None)
    return parser


def run_push(push: Callable[..., str], args: argparse.Namespace, what: str, **options) -> int:
    """Calls ``push(directory, repo_id, ...)`` and prints the repo URL (the command runner reports any error)."""
    url = push(
        args.directory,
        args.repo_id,
        private=args.private,
        revision=args.revision,
        commit_message=args.commit_message,
        **options,
    )
    print(f"{what} pushed to {url}")
    return 0
