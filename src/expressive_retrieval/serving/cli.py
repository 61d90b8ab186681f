"""``expressive-retrieval``: verify, search or publish a bundle; prints JSON.

    expressive-retrieval verify BUNDLE [--expect-sha256 SHA] [--no-verify]
    expressive-retrieval search BUNDLE --query q.npy \\
        [--tracks] [--k 10] [--weights tempo=2,dynamics=1] [--exclude-track T ...]
    expressive-retrieval search BUNDLE --audio take.flac [--model /models/MERT-v1-95M] ...
    expressive-retrieval publish BUNDLE s3://bucket/prefix

``BUNDLE`` is a bundle folder or a URL (``s3://bucket/prefix/<version>``, or the prefix
with ``--latest``), fetched into the local cache first. A query file holds segments
``[n_seg, L, D]`` or a vector ``[vector_dim]``; a batch ``[Q, n_seg, L, D]`` or
``[Q, vector_dim]`` prints one result list per query. An audio query (``pip install
'expressive-retrieval[audio]'``) is embedded as the bundle's extraction record says.
``search`` warns (on stderr) when the bundle is not an approved release. Exit status: 0 on
success, 1 for a refused bundle or model, 2 for a refused query or bad arguments.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from dataclasses import asdict
from pathlib import Path

import numpy as np

from expressive_retrieval.audio.embedding import ModelMismatchError
from expressive_retrieval.serving.bundle import BundleIntegrityError
from expressive_retrieval.serving.retriever import QueryError, Retriever, load_bundle


class ReleaseWarning(UserWarning):
    """A search runs against a bundle that is not an approved release."""


def _weights(text: str) -> dict[str, float]:
    """``"tempo=2,dynamics=1"`` → ``{"tempo": 2.0, "dynamics": 1.0}``."""
    weights = {}
    for item in filter(None, text.split(",")):
        name, _, value = item.partition("=")
        try:
            weights[name.strip()] = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected aspect=weight, got {item!r}") from None
    return weights


def _bundle_arguments(command: argparse.ArgumentParser) -> None:
    command.add_argument("bundle", help="a bundle folder or URL (s3://bucket/prefix/<version>)")
    command.add_argument("--latest", action="store_true", help="BUNDLE is a prefix: its LATEST")
    command.add_argument("--expect-sha256", help="refuse any other bundle_sha256 (pinning)")
    command.add_argument(
        "--no-verify", action="store_true", help="skip content hashing (sizes still checked)"
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="expressive-retrieval",
        description="Verify, search or publish an Expressive Retrieval bundle.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    verify = commands.add_parser("verify", help="check the manifest and every file's sha256")
    _bundle_arguments(verify)
    search = commands.add_parser("search", help="search clips (or tracks) like a query")
    _bundle_arguments(search)
    query = search.add_mutually_exclusive_group(required=True)
    query.add_argument("--query", type=Path, help=".npy: segments or a vector")
    query.add_argument("--audio", type=Path, help="an audio file, embedded as the corpus was")
    search.add_argument("--model", help="the recorded model's folder here (with --audio)")
    search.add_argument("--tracks", action="store_true", help="return tracks instead of clips")
    search.add_argument("--k", type=int, default=10)
    search.add_argument("--weights", type=_weights, help="aspect=weight,... (others weigh 0)")
    search.add_argument("--exclude-track", action="append", default=[], metavar="TRACK_ID")
    search.add_argument("--split", action="append", metavar="SPLIT", help="only these splits")
    publish = commands.add_parser("publish", help="upload a bundle, verify it, move LATEST")
    publish.add_argument("bundle", type=Path, help="a local bundle folder")
    publish.add_argument("url", help="the publication prefix, e.g. s3://bucket/bundles")
    return parser


def _load(args: argparse.Namespace) -> Retriever:
    return load_bundle(
        args.bundle,
        verify=not args.no_verify,
        expected_sha256=args.expect_sha256,
        latest=args.latest,
    )


def _summary(retriever: Retriever, args: argparse.Namespace) -> dict[str, object]:
    manifest = retriever.manifest
    return {
        "bundle": str(args.bundle),
        "bundle_version": manifest["bundle_version"],
        "bundle_sha256": retriever.bundle_sha256,
        "release": retriever.release,
        "evaluation_gates": manifest["evaluation_gates"],
        "dataset_version": manifest["dataset_version"],
        "files": len(manifest["files"]),
        "bytes": sum(entry["bytes"] for entry in manifest["files"]),
        "verified": not args.no_verify,
    }


def _search(args: argparse.Namespace) -> object:
    retriever = _load(args)
    if retriever.release != "approved":
        warnings.warn(
            f"bundle {retriever.manifest['bundle_version']} is a {retriever.release} release "
            f"(evaluation gates {retriever.manifest['evaluation_gates']}), not approved",
            ReleaseWarning,
            stacklevel=2,
        )
    if args.audio is not None:
        query = retriever.embed_audio(args.audio, model=args.model)
    else:
        try:
            query = np.load(args.query, allow_pickle=False)
        except (OSError, ValueError) as error:
            raise QueryError(f"{args.query}: not a readable .npy array ({error})") from error
    batch = query.ndim in (2, 4)
    queries = list(query) if batch else [query]
    search = retriever.search_tracks_batch if args.tracks else retriever.search_clips_batch
    results = search(queries, args.k, args.weights, [args.exclude_track] * len(queries), args.split)
    payload = [[asdict(hit) for hit in hits] for hits in results]
    return {
        "bundle_version": retriever.manifest["bundle_version"],
        "bundle_sha256": retriever.bundle_sha256,
        "release": retriever.release,
        "kind": "tracks" if args.tracks else "clips",
        "results": payload if batch else payload[0],
    }


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; print JSON to stdout, errors and warnings to stderr."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "verify":
            output: object = _summary(_load(args), args)
        elif args.command == "publish":
            from expressive_retrieval.serving.remote import publish_bundle

            output = publish_bundle(args.bundle, args.url)
        else:
            output = _search(args)
    except (BundleIntegrityError, FileExistsError) as error:
        print(f"bundle refused: {error}", file=sys.stderr)
        sys.exit(1)
    except ModelMismatchError as error:
        print(f"model refused: {error}", file=sys.stderr)
        sys.exit(1)
    except QueryError as error:
        print(f"query refused: {error}", file=sys.stderr)
        sys.exit(2)
    print(json.dumps(output, indent=2))
