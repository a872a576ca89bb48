"""The committed checkpoints' command line: list the experiments, regenerate checkpoints, print their provenance.

    python -m thesis_lib.reproduction.regenerate list
    python -m thesis_lib.reproduction.regenerate train ae_thesis vae_standard --log train.log
    python -m thesis_lib.reproduction.regenerate train --chapter 04 --retrain
    python -m thesis_lib.reproduction.regenerate table  # the README's table of the committed checkpoints

``train`` trains the experiments of :mod:`thesis_lib.reproduction.experiments` one after the other in this
process, into ``checkpoints/`` unless ``--checkpoint-dir`` says otherwise, with the CPUs no other process is
using (``--threads 0``). :mod:`thesis_lib.reproduction.reproduce` trains them all, for several seeds, on a
Dask cluster.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from thesis_lib.ground.cli import ArgumentParser, existing_dir, folder_to_write, usage_errors
from thesis_lib.ground.config import ChapterConfig
from thesis_lib.ground.paths import default_checkpoint_dir
from thesis_lib.reproduction.experiments import EXPERIMENTS, get, run
from thesis_lib.runtime.checkpoints import load_checkpoint
from thesis_lib.runtime.process import resolve_device, restart_with_malloc_settings, tune_process


def provenance_table(checkpoint_dir: Path | None = None) -> str:
    """One Markdown row per committed checkpoint: epochs, wall time, hardware and final losses."""
    folder = checkpoint_dir or default_checkpoint_dir()
    rows = ["| experiment | epochs | wall time | device | threads | torch | final train loss | final test loss |",
            "| --- | ---: | ---: | --- | ---: | --- | ---: | ---: |"]
    for exp in EXPERIMENTS.values():
        path = folder / f"{exp.name}.pt"
        if not path.is_file():
            rows.append(f"| {exp.name} | (not trained) | | | | | | |")
            continue
        ck = load_checkpoint(path)
        prov = ck.get("provenance", {})
        final = prov.get("final", {})
        minutes = prov.get("wall_seconds", float("nan")) / 60
        rows.append(
            f"| {exp.name} | {ck['epoch']} | {minutes:.1f} min | "
            f"{prov.get('device', '?')} ({prov.get('device_name', '?')}) | "
            f"{prov.get('threads', '?')} | {prov.get('torch', '?')} | {final.get('train_loss', float('nan')):.4g} | "
            f"{final.get('test_loss', float('nan')):.4g} |"
        )
    return "\n".join(rows)


def _parser() -> ArgumentParser:
    parser = ArgumentParser(prog="python -m thesis_lib.reproduction.regenerate", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list")
    sub.add_parser("table", help="a Markdown table of the committed checkpoints' provenance (for the README)")
    tr = sub.add_parser("train")
    tr.add_argument("names", nargs="*")
    tr.add_argument("--chapter", choices=("04", "05"))
    tr.add_argument("--retrain", action="store_true")
    tr.add_argument("--device", default="auto", help="auto (default), cpu or cuda")
    tr.add_argument("--threads", type=int, default=0,
                    help="CPU threads per process; 0 (default) picks the free CPUs "
                         "(thesis_lib.runtime.process.choose_threads)")
    tr.add_argument("--checkpoint-dir", default=None, help="default: the committed checkpoints/")
    tr.add_argument("--log", default=None, help="append a line per experiment to this file")
    tr.add_argument("--progress", action="store_true", help="show a per-epoch progress bar on stderr")
    return parser


def _train(names: list[str], args: argparse.Namespace) -> None:
    log = open(args.log, "a") if args.log else sys.stderr
    for n in names:
        cfg = ChapterConfig.from_parameters(chapter=get(n).chapter, device=args.device, retrain=args.retrain,
                                            checkpoint_dir=args.checkpoint_dir)
        t0 = time.time()
        print(f"{time.strftime('%H:%M:%S')} {n}: start", file=log, flush=True)
        res = run(n, cfg, progress=args.progress)
        final = {k: round(v[-1], 4) for k, v in res.history.metrics.items() if v}
        done = "trained" if res.trained else "loaded"
        print(f"{time.strftime('%H:%M:%S')} {n}: {done} in {time.time() - t0:.0f} s {final}", file=log, flush=True)


def _main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "list":
        for e in EXPERIMENTS.values():
            print(f"{e.name:18s} ch{e.chapter}  {e.full.epochs:5d} epochs  {e.about}")
    elif args.command == "table":
        print(provenance_table())
    else:
        names = args.names or [e.name for e in EXPERIMENTS.values() if args.chapter in (None, e.chapter)]
        with usage_errors(parser):  # every argument checked before anything is trained
            unknown = [n for n in names if n not in EXPERIMENTS]
            if unknown:
                raise ValueError(f"NAME must be one of {', '.join(EXPERIMENTS)}; got {', '.join(unknown)}")
            if args.threads < 0:
                raise ValueError(f"--threads must be a positive integer, or 0 for the free CPUs; got {args.threads}")
            try:
                resolve_device(args.device)
            except ValueError as exc:
                raise ValueError(f"--{exc}") from None
            if args.checkpoint_dir is not None:
                folder_to_write("--checkpoint-dir", args.checkpoint_dir)
            if args.log is not None:
                existing_dir("--log's folder", Path(args.log).expanduser().parent)
                if Path(args.log).expanduser().is_dir():
                    raise ValueError(f"--log must be a file to append to; {args.log} is a folder")
        tune_process(args.threads)  # this command is an entry point: it sets up its own process
        _train(names, args)
    return 0


if __name__ == "__main__":
    restart_with_malloc_settings(["-m", "thesis_lib.reproduction.regenerate", *sys.argv[1:]])  # see runtime.process
    raise SystemExit(_main())
