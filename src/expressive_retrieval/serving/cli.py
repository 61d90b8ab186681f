"""``expressive-retrieval``: verify a bundle, or search it with a query ``.npy``; prints JSON.

    expressive-retrieval verify data/09_export/<bundle_version>
    expressive-retrieval search data/09_export/<bundle_version> --query q.npy \\
        [--tracks] [--k 10] [--weights tempo=2,dynamics=1] [--exclude-track T ...]
    expressive-retrieval search data/09_export/<bundle_version> --audio take.flac \\
        [--model /models/MERT-v1-95M] ...

A query file holds segments ``[n_seg, L, D]`` or a vector ``[vector_dim]``; a batch
``[Q, n_seg, L, D]`` or ``[Q, vector_dim]`` prints one result list per query. An audio
query (``pip install 'expressive-retrieval[audio]'``) is embedded as the bundle's
extraction record says. Exit status: 0 on success, 1 for a refused bundle or model, 2 for
a refused query or bad arguments.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np

from expressive_retrieval.audio.embedding import ModelMismatchError
from expressive_retrieval.serving.bundle import BundleIntegrityError, verify_bundle
from expressive_retrieval.serving.retriever import QueryError, load_bundle


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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="expressive-retrieval", description="Verify or search an Expressive Retrieval bundle."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    verify = commands.add_parser("verify", help="check the manifest and every file's sha256")
    verify.add_argument("bundle", type=Path)
    search = commands.add_parser("search", help="search clips (or tracks) like a query")
    search.add_argument("bundle", type=Path)
    query = search.add_mutually_exclusive_group(required=True)
    query.add_argument("--query", type=Path, help=".npy: segments or a vector")
    query.add_argument("--audio", type=Path, help="an audio file, embedded as the corpus was")
    search.add_argument("--model", help="the recorded model's folder here (with --audio)")
    search.add_argument("--tracks", action="store_true", help="return tracks instead of clips")
    search.add_argument("--k", type=int, default=10)
    search.add_argument("--weights", type=_weights, help="aspect=weight,... (others weigh 0)")
    search.add_argument("--exclude-track", action="append", default=[], metavar="TRACK_ID")
    search.add_argument("--split", action="append", metavar="SPLIT", help="only these splits")
    search.add_argument("--no-verify", action="store_true", help="skip the checksums")
    return parser


def _search(args: argparse.Namespace) -> object:
    retriever = load_bundle(args.bundle, verify=not args.no_verify)
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
        "kind": "tracks" if args.tracks else "clips",
        "results": payload if batch else payload[0],
    }


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; print JSON to stdout, errors to stderr."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "verify":
            manifest = verify_bundle(args.bundle)
            output: object = {
                "bundle": str(args.bundle),
                "bundle_version": manifest["bundle_version"],
                "dataset_version": manifest["dataset_version"],
                "files": len(manifest["files"]),
                "bytes": sum(entry["bytes"] for entry in manifest["files"]),
                "verified": True,
            }
        else:
            output = _search(args)
    except BundleIntegrityError as error:
        print(f"bundle refused: {error}", file=sys.stderr)
        sys.exit(1)
    except ModelMismatchError as error:
        print(f"model refused: {error}", file=sys.stderr)
        sys.exit(1)
    except QueryError as error:
        print(f"query refused: {error}", file=sys.stderr)
        sys.exit(2)
    print(json.dumps(output, indent=2))
