"""Command line: `arreg train ...` (every TrainConfig field is a flag), `arreg runs`,
`arreg analyze RUN_DIR` (the analysis artifacts of one run) and `arreg seal --runs-dir DIR`
(accept a store's files as they are, after an intended change)."""

from __future__ import annotations

import argparse
import dataclasses
import errno
import json
import os
import sys
import types
import typing
from pathlib import Path

import pandas as pd

from . import runs
from .manifest import TamperedError
from .profiles import EXPERIMENTS, PROFILES
from .analysis import PIECES, analyze
from .book import BookError
from .device import resolve_device, resolve_precision
from .train import COMPILE_MODES, TrainConfig


class Parser(argparse.ArgumentParser):
    """argparse with its errors as one line, `arreg: error: ...` (no usage block)."""

    def error(self, message):
        self.exit(2, f"arreg: error: {message} (see `{self.prog} --help`)\n")


def _convert(kind: type):
    """argparse type for int/float/bool/str values, whose error says what was expected."""
    expected = {int: "integer", float: "number", bool: "true or false", str: "text"}[kind]

    def convert(text: str):
        try:
            if kind is bool:
                return {"true": True, "1": True, "false": False, "0": False}[text.lower()]
            return kind(text)
        except (KeyError, ValueError):
            raise argparse.ArgumentTypeError(f"{expected} expected, got {text!r}") from None

    convert.__name__ = expected
    return convert


def _field_parser(field: dataclasses.Field):
    """argparse type (and nargs) for a TrainConfig field, from its annotation."""
    hint = typing.get_type_hints(TrainConfig)[field.name]
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        base = _convert(args[0])

        def optional(text: str):
            return None if text.lower() == "none" else base(text)

        return optional, None
    if typing.get_origin(hint) is tuple:
        return _convert(args[0]), "*"
    return _convert(hint), None


SCALE_255 = ("eps", "attack_step")  # TrainConfig fields on the paper's 0-255 scale


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    for field in dataclasses.fields(TrainConfig):
        convert, nargs = _field_parser(field)
        scale = " (0-255 scale: 8 means 8/255)" if field.name in SCALE_255 else ""
        parser.add_argument(f"--{field.name.replace('_', '-')}", dest=field.name, type=convert, nargs=nargs,
                            default=argparse.SUPPRESS, help=f"default: {field.default}{scale}")


def read_config_file(path: str) -> dict:
    """The TrainConfig fields of a JSON file (a run's config.json, say); errors name the file."""
    try:
        text = Path(path).read_text()
    except OSError as err:
        raise ValueError(f"--config {path}: {err.strerror or err}") from None
    try:
        values = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        where = f" at line {err.lineno} column {err.colno}" if isinstance(err, json.JSONDecodeError) else ""
        raise ValueError(f"{path} is not valid JSON{where}: "
                         f"{getattr(err, 'msg', err)}; fix the file (a run's config.json is an example)") from None
    if not isinstance(values, dict):
        raise ValueError(f"{path} must hold a JSON object of TrainConfig fields ({{\"eps\": 8, ...}}), "
                         f"got a {type(values).__name__}")
    return values


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    values = read_config_file(args.config) if args.config else {}
    flags = {k: v for k, v in vars(args).items() if k in fields}
    merged = {**values, **flags}
    if "precision" in merged:
        merged["precision"] = resolve_precision(merged["precision"], getattr(args, "device", "auto"))
    try:
        return TrainConfig.from_dict(merged)
    except ValueError as err:
        if values:
            try:
                TrainConfig.from_dict({k: v for k, v in values.items() if k != "precision" or v != "auto"})
            except ValueError:
                raise ValueError(f"{args.config}: {err}") from None
        raise


def cmd_train(args) -> int:
    config = config_from_args(args)
    run = runs.get_or_train(config, args.runs_dir, device=args.device, data_root=args.data_root,
                            channels_last=args.channels_last, compile=args.compile, cuda_graphs=args.cuda_graphs,
                            progress=not args.quiet,
                            retrain=args.retrain, lock_timeout=args.lock_timeout)
    print(run.path)
    print(json.dumps(run.metrics, indent=2))
    return 0


def cmd_runs(args) -> int:
    if args.migrate:
        for old, new in runs.migrate_keys(args.runs_dir):
            print(f"renamed {old} -> {new}")
    runs.verify_store(args.runs_dir or runs.default_runs_dir())
    table = runs.list_runs(args.runs_dir)
    if table.empty:
        print(f"no runs under {args.runs_dir or runs.default_runs_dir()}")
        return 0
    cols = [c for c in ["run", "status", "checkpoint", "epochs", "train_acc", "test_acc", "gap_acc", "train_loss",
                        "test_loss", "gap_loss", "pgd_acc"] if c in table]
    with pd.option_context("display.width", 200, "display.max_columns", None, "display.float_format", "{:.3f}".format):
        print(table[cols].to_string(index=False))
    log = Path(args.runs_dir or runs.default_runs_dir()) / runs.PREPARE_LOG
    if log.is_file():
        from .executors import store_wall_time

        wall = store_wall_time(log)
        print(f"built by `arreg prepare` in {len(wall['sessions'])} invocations: {wall['wall_s'] / 3600:.2f} h wall "
              f"in all, {wall['trained']} runs trained, on {'; '.join(wall['cpu_models'])} ({log.name})")
    return 0


def cmd_seal(args) -> int:
    count = runs.seal_store(args.runs_dir)
    print(f"sealed {count} files of {args.runs_dir} in {Path(args.runs_dir) / 'manifest.json'}")
    return 0


def _json_or_string(value: str):
    """VALUE as JSON where it parses (4, 0.5, [1, 2], null), else the string itself."""
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def parse_param(text: str) -> tuple[str, str, object]:
    """PIECE.NAME=VALUE, VALUE as JSON where it parses, else a string."""
    name, sep, value = text.partition("=")
    piece, dot, key = name.partition(".")
    if not (sep and dot and piece and key):
        raise argparse.ArgumentTypeError(f"expected PIECE.NAME=VALUE (e.g. bound.n_examples=1000), got {text!r}")
    return piece, key, _json_or_string(value)


def cmd_analyze(args) -> int:
    resolve_device(args.device)
    params: dict = {}
    for piece, key, value in args.set or []:
        params.setdefault(piece, {})[key] = value
    result = analyze(args.run_dir, pieces=args.pieces, params=params, device=args.device, data_root=args.data_root)
    for piece, info in result.items():
        print(f"{piece:15s} {'computed' if info['computed'] else 'reused  '} {info['path']}")
    return 0


def parse_notebook_param(text: str) -> tuple[str, object]:
    """NAME=VALUE for the notebooks' parameters cell, VALUE as JSON where it parses."""
    name, sep, value = text.partition("=")
    if not (sep and name):
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE (e.g. eps=[2,6]), got {text!r}")
    return name, _json_or_string(value)


def _set_lock_timeout(seconds: float | None) -> None:
    """--lock-timeout for every process this one starts (the workers of prepare_profile)."""
    if seconds is not None:
        os.environ["ARREG_LOCK_TIMEOUT"] = str(seconds)


def cmd_book(args) -> int:
    from .book import build_book

    _set_lock_timeout(args.lock_timeout)
    executor = executor_from_args(args)
    html = build_book(args.profile, fresh=args.fresh, parameters=dict(args.param or []), workers=args.workers,
                      executor=executor)
    print(f"book: {html / 'index.html'}")
    return 0


def add_executor_flags(parser: argparse.ArgumentParser) -> None:
    """--executor and the Ray executor's flags (arreg_core.executors), for `prepare` and `book`."""
    parser.add_argument("--executor", choices=("local", "ray"), default="local",
                        help="local: --workers processes on this machine (default); ray: one Ray task per run")
    parser.add_argument("--address", default=None,
                        help="ray: the cluster to join (auto: the one running on this machine); default: start a local one")
    parser.add_argument("--gpus-per-run", type=_convert(float), default=None, metavar="G",
                        help="ray: GPUs per run; fractional ones share a GPU (default 0)")
    parser.add_argument("--cpus-per-run", type=_convert(float), default=None, metavar="C", help="ray: CPUs per run (default 1)")


def executor_from_args(args):
    from .executors import make_executor

    return make_executor(args.executor, args.workers, args.address, args.gpus_per_run, args.cpus_per_run)


def cmd_prepare(args) -> int:
    from .experiments import prepare_profile

    resolve_device(args.device)
    _set_lock_timeout(args.lock_timeout)
    experiments = {"experiments": tuple(args.experiments)} if args.experiments else {}
    done = prepare_profile(args.profile, workers=args.workers, runs_dir=args.runs_dir, device=args.device,
                           data_root=args.data_root, executor=executor_from_args(args), **experiments,
                           **dict(args.param or []))
    print(f"{len(done)} runs trained and analysed (or found) for profile {args.profile}")
    return 0


def cmd_export_runs(args) -> int:
    from .transfer import pack_store

    for part in pack_store(args.runs_dir, args.out, args.part_mib):
        print(f"{part} ({part.stat().st_size / 2**20:.1f} MiB)")
    return 0


def cmd_import_runs(args) -> int:
    from .transfer import import_parts

    for run, what in import_parts(args.parts, args.runs_dir):
        print(f"{what:9s} {run}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show the traceback of an error (also: ARREG_DEBUG=1)")
    lock = argparse.ArgumentParser(add_help=False)
    lock.add_argument("--lock-timeout", type=_convert(float), default=None, metavar="SECONDS",
                      help="give up after waiting this long for a run another process holds (default: wait)")
    parser = Parser(prog="arreg", description=__doc__, parents=[common])
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train (or load) one run of the run store", parents=[common, lock])
    train.add_argument("--config", help="JSON file of TrainConfig fields; flags override it")
    add_config_flags(train)
    train.add_argument("--runs-dir", default=None, help="run store (default: $ARREG_RUNS, else runs/; "
                       "relative to the checkout)")
    train.add_argument("--data-root", default=None, help="data folder (default: $ARREG_DATA)")
    train.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    train.add_argument("--channels-last", action="store_true", help="channels_last memory format")
    train.add_argument("--compile", nargs="?", const=True, default=False, choices=COMPILE_MODES,
                       metavar="MODE", help="torch.compile the forward passes; MODE: "
                       f"{', '.join(COMPILE_MODES)} (reduce-overhead: CUDA graphs, for launch-bound GPU steps)")
    train.add_argument("--cuda-graphs", action="store_true",
                       help="run the whole training step as one CUDA graph per epoch (CUDA only; not with --compile)")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.add_argument("--retrain", action="store_true",
                       help="train the run again from scratch into its directory (a missing or corrupt checkpoint)")
    train.set_defaults(func=cmd_train)
    listing = sub.add_parser("runs", help="list the run store's runs, their checkpoints and metrics", parents=[common])
    listing.add_argument("--runs-dir", default=None)
    listing.add_argument("--migrate", action="store_true",
                         help="first rename runs stored under their pre-0.2 keys (how a number was written) to their keys")
    listing.set_defaults(func=cmd_runs)
    seal = sub.add_parser("seal", help="record the sha256 of a store's files as they are now, after an intended change "
                          "(every finished run must read)", parents=[common])
    seal.add_argument("--runs-dir", required=True, help="the run store to seal")
    seal.set_defaults(func=cmd_seal)
    analysis_cmd = sub.add_parser("analyze", help="compute (or reuse) the analysis artifacts of one finished run",
                                  parents=[common])
    analysis_cmd.add_argument("run_dir", help="the run's directory")
    analysis_cmd.add_argument("--pieces", nargs="+", choices=PIECES, default=list(PIECES))
    analysis_cmd.add_argument("--set", action="append", type=parse_param, metavar="PIECE.NAME=VALUE",
                              help="override a piece's parameter, e.g. --set bound.n_examples=1000 (repeatable)")
    analysis_cmd.add_argument("--data-root", default=None, help="data folder (default: $ARREG_DATA)")
    analysis_cmd.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    analysis_cmd.set_defaults(func=cmd_analyze)
    book = sub.add_parser("book", help="execute every notebook under a profile and build the Jupyter Book",
                          parents=[common, lock])
    book.add_argument("--profile", default="cpu", choices=PROFILES)
    book.add_argument("--fresh", action="store_true", help="delete the profile's run store first: recompute everything")
    book.add_argument("-p", "--param", action="append", type=parse_notebook_param, metavar="NAME=VALUE",
                      help="a notebook parameter for every chapter, e.g. -p eps=[2,6] (repeatable)")
    book.add_argument("--workers", type=_convert(int), default=2,
                      help="processes that train missing runs before the notebooks execute (1 on a single GPU)")
    add_executor_flags(book)
    book.set_defaults(func=cmd_book)
    prepare = sub.add_parser("prepare", help="train and analyse every run of a profile in parallel processes",
                             parents=[common, lock])
    prepare.add_argument("--profile", default="cpu", choices=PROFILES)
    prepare.add_argument("--workers", type=_convert(int), default=2)
    prepare.add_argument("--runs-dir", default=None, help="default: $ARREG_RUNS, else the profile's")
    prepare.add_argument("--data-root", default=None, help="data folder (default: $ARREG_DATA)")
    prepare.add_argument("--device", default="auto")
    prepare.add_argument("--experiments", nargs="+", choices=EXPERIMENTS, default=None, metavar="EXPERIMENT",
                         help=f"only these experiments' runs, in this order ({', '.join(EXPERIMENTS)}; default: all)")
    prepare.add_argument("-p", "--param", action="append", type=parse_notebook_param, metavar="NAME=VALUE",
                         help="override a profile entry, TrainConfig field or execution option for every run, e.g. "
                              "-p epochs=20, or -p stack=3 on a GPU (runs that differ only in eps, attack step, seed, "
                              "warm-up or clip trained as one network, 3 at most, in this process before the other "
                              "runs) (repeatable)")
    add_executor_flags(prepare)
    prepare.set_defaults(func=cmd_prepare)
    export = sub.add_parser("export-runs", help="pack a run store into parts of at most --part-mib MiB (to move it)",
                            parents=[common])
    export.add_argument("--runs-dir", required=True)
    export.add_argument("--out", required=True, help="prefix of the parts: <out>.part00, <out>.part01, ...")
    export.add_argument("--part-mib", type=_convert(float), default=15.0)
    export.set_defaults(func=cmd_export_runs)
    importing = sub.add_parser("import-runs", help="verify packed runs (arreg export-runs) and bring them into a store",
                               parents=[common])
    importing.add_argument("parts", nargs="+", help="every <prefix>.partNN file")
    importing.add_argument("--runs-dir", required=True)
    importing.set_defaults(func=cmd_import_runs)
    return parser


def describe(err: BaseException) -> str:
    """One line: what went wrong and the fix."""
    if isinstance(err, OSError) and err.errno in FIXES:
        where = f" ({err.filename})" if err.filename else ""
        return f"{os.strerror(err.errno).lower()}{where}: {FIXES[err.errno]}"
    if isinstance(err, (ValueError, OSError, runs.RunError, BookError, TamperedError)):
        return " ".join(str(err).split()) or type(err).__name__
    if isinstance(err, RuntimeError) and "out of memory" in str(err):
        return "out of memory: lower --batch-size (or use a smaller network)"
    return f"{type(err).__name__}: {' '.join(str(err).split())} (unexpected: rerun with --debug for the traceback)"


FIXES = {
    errno.ENOSPC: "free some space (or choose another --runs-dir) and rerun: a run resumes from its last finished epoch",
    errno.EDQUOT: "free some space (or choose another --runs-dir) and rerun: a run resumes from its last finished epoch",
    errno.EACCES: "choose a folder you can write (--runs-dir, ARREG_CACHE) or fix its permissions",
    errno.EPERM: "choose a folder you can write (--runs-dir, ARREG_CACHE) or fix its permissions",
    errno.EROFS: "the run store is on a read-only file system: choose a writable --runs-dir (or copy the store)",
}


def main(argv=None) -> int:
    """Every error a user can cause ends as one line, `arreg: error: <what and the fix>`, exit 2;
    --debug (or ARREG_DEBUG=1) shows the traceback instead."""
    args = build_parser().parse_args(argv)
    debug = getattr(args, "debug", False) or os.environ.get("ARREG_DEBUG", "") not in ("", "0")
    try:
        return args.func(args)
    except KeyboardInterrupt:
        if debug:
            raise
        print("arreg: interrupted (a run resumes from its last finished epoch)", file=sys.stderr)
        return 130
    except Exception as err:
        if debug:
            raise
        print(f"arreg: error: {describe(err)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
