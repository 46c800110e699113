#!/usr/bin/env python
"""Upload an asna_metric weights file to the Hugging Face Hub and print its registry entry.

The file is checked first (it must load as an asna_metric ensemble header),
its sha256 is computed, it is uploaded with ``HfApi.upload_file``, and the
resulting commit revision is printed together with a ``WeightsSpec(...)``
snippet to paste into ``asna_metric.weights.REGISTRY``.

Authentication is huggingface_hub's own (``hf auth login`` or ``HF_TOKEN``).
Nothing is uploaded without ``--yes``.

Example:
    python scripts/upload_weights.py runs/kadid/ensemble.safetensors \\
        --repo-id asna-metric/asna-kadid-synth --name asna-kadid-synth --yes
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="upload_weights.py",
        description="Upload a weights file to the Hub and print the registry entry.",
    )
    parser.add_argument("file", type=Path, help="the .safetensors file written by save_ensemble")
    parser.add_argument("--repo-id", required=True, help="Hub model repository, org/name")
    parser.add_argument(
        "--name", help="registry name for the printed WeightsSpec (default: the file's metadata)"
    )
    parser.add_argument(
        "--path-in-repo", help="file name inside the repository (default: the local file name)"
    )
    parser.add_argument("--message", help="commit message (default: 'Upload <file>')")
    parser.add_argument(
        "--create-repo", action="store_true", help="create the repository if it does not exist"
    )
    parser.add_argument(
        "--private", action="store_true", help="with --create-repo: make it private"
    )
    parser.add_argument(
        "--yes", action="store_true", help="really upload (without it, only check and print)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    from asna_metric.weights import sha256_file, weights_info

    path: Path = args.file
    if path.suffix != ".safetensors" or not path.is_file():
        print(f"error: {path} is not an existing .safetensors file", file=sys.stderr)
        return 2
    info = weights_info(path)  # raises WeightsIntegrityError for a bad file
    digest = sha256_file(path)
    name = args.name or info.get("name") or path.stem
    path_in_repo = args.path_in_repo or path.name
    print(f"file:    {path} ({path.stat().st_size} bytes, {len(info['members'])} member(s))")
    print(f"sha256:  {digest}")
    if not args.yes:
        print(
            f"dry run: would upload to {args.repo_id}/{path_in_repo}; pass --yes to upload",
            file=sys.stderr,
        )
        return 1

    from huggingface_hub import HfApi

    api = HfApi(library_name="asna_metric")
    if args.create_repo:
        api.create_repo(args.repo_id, repo_type="model", private=args.private, exist_ok=True)
    commit = api.upload_file(
        path_or_fileobj=str(path),
        path_in_repo=path_in_repo,
        repo_id=args.repo_id,
        repo_type="model",
        commit_message=args.message or f"Upload {path_in_repo}",
    )
    revision = getattr(commit, "oid", None)
    if not revision:  # very old huggingface_hub returned only a URL
        revision = api.model_info(args.repo_id).sha
    print(f"revision: {revision}")
    print()
    print("Registry entry for src/asna_metric/weights.py:")
    print(
        f"    {name!r}: WeightsSpec(\n"
        f"        name={name!r},\n"
        f"        repo_id={args.repo_id!r},\n"
        f"        revision={revision!r},\n"
        f"        filename={path_in_repo!r},\n"
        f"        sha256={digest!r},\n"
        f"        embedded=None,\n"
        f"        description={info.get('description', '')!r},\n"
        f"    ),"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
