"""Command line: `python -m core taxonomy|train|compare ...`. Bad input exits 2 with one readable message."""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Callable, Sequence

from core import settings
from core.embeddings import EncoderUnavailable
from core.settings import DEFAULT_REVIEW_RISK
from core.taxonomy import FORMATS, TaxonomyError, load_taxonomy

EXIT_BAD_INPUT = 2
# data settings that describe training labels or splits, which `predict` has no use for
NOT_PREDICT_SETTINGS = ("label_columns", "use_text", "max_depth", "taxonomy", "taxonomy_format", "val_fraction",
                        "test_fraction")


class CliError(Exception):
    """A problem with the user's arguments or files; printed without a traceback."""


def cmd_taxonomy(args: argparse.Namespace) -> int:
    tax = load_taxonomy(args.path, format=args.format)
    summary = tax.summary()
    print(f"{args.path}: {summary['nodes']} nodes, {summary['leaves']} leaves, {summary['roots']} top-level, "
          f"depth {summary['max_depth']} (format: {summary['format']})")
    print("nodes per depth: " + ", ".join(f"{d}: {n}" for d, n in summary["depth_counts"].items()))
    counts = Counter(p.code for p in tax.problems)
    if counts:
        print(f"{len(tax.problems)} warnings: " + ", ".join(f"{n} {code}" for code, n in counts.most_common()))
        for p in tax.problems[: args.show_problems]:
            print(f"  {p}")
    if args.json:
        print(json.dumps({k: summary[k] for k in ("nodes", "leaves", "roots", "max_depth", "problems")}))
    return 0


class Progress:
    """tqdm bars for the pipeline's stages, and one line per epoch."""

    def __init__(self, quiet: bool = False) -> None:
        from tqdm import tqdm

        self.tqdm, self.quiet, self.bars = tqdm, quiet, {}

    def event(self, stage: str, done: int, total: int) -> None:
        if self.quiet:
            return
        bar = self.bars.get(stage)
        if bar is None or bar.total != total or done < bar.n:
            if bar is not None:
                bar.close()
            bar = self.bars[stage] = self.tqdm(total=total, desc=stage, leave=False, file=sys.stderr)
        bar.update(done - bar.n)

    def epoch(self, log: object) -> None:
        if not self.quiet:
            self.tqdm.write(f"epoch {log.epoch + 1}: loss {log.train_loss:.4f}  val top1 {log.val_top1:.3f}  "
                            f"val semsim@5 {log.val_semsim5:.3f}  smoothing {log.smoothing:.3f}  ({log.seconds:.1f} s)", file=sys.stderr)

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()


def print_result(run_dir: object, summary: dict, as_json: bool) -> None:
    if summary.get("cancelled"):
        print(f"run {run_dir.name} was cancelled")
        return
    print(summary["encoder"])
    for note in summary["notes"]:
        print(f"note: {note}")
    plain, crm = summary["plain"], summary["crm"]
    print(f"run {run_dir.name}: {summary['n_classes']} classes, {summary['n_test']} test items, modalities: {', '.join(summary['modalities'])}")
    for key in ("top1", "top5", "mistake_severity", "hdist@5", "semsim@5", "neighbor_hits@5", "ece", "ece_raw", "temperature",
                "hier_f1"):
        value = plain.get(key)
        extra = f"   (CRM re-ranked: {crm[key]:.4f})" if crm.get(key) is not None and key in ("top1", "mistake_severity", "hdist@5") else ""
        print(f"  {key:<18}{'n/a' if value is None else f'{value:.4f}'}{extra}")
    if as_json:
        print(json.dumps({"run_id": run_dir.name, "run_dir": str(run_dir)} | plain | {"crm": crm}))


def cmd_train(args: argparse.Namespace) -> int:
    from core.experiment import check_inputs, execute_run
    from core.runs import RunStore
    from core.settings import config_from_args

    config = config_from_args(args)
    dataset = check_inputs(config)
    run_dir = RunStore(args.out).create(config.to_dict()).path
    progress = Progress(quiet=args.quiet)
    print(f"run {run_dir.name} started in {run_dir}", file=sys.stderr)
    try:
        summary = execute_run(run_dir, on_epoch=progress.epoch, on_event=progress.event, dataset=dataset)
    finally:
        progress.close()
    print_result(run_dir, summary, args.json)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """Execute an already created (queued) run folder; what the app launches in the background."""
    from core.experiment import execute_run
    from core.runs import Run, claim

    run = Run.open(args.run_dir)
    if run.state != "queued":
        claim(run.path)  # raises the readable refusal; nothing in the folder is touched
    summary = execute_run(run.path, on_epoch=lambda log: print(f"epoch {log.epoch + 1} done", flush=True))
    print_result(run.path, summary, as_json=False)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    import pandas as pd

    from core.runs import compare

    table = compare(args.run_dirs)
    with pd.option_context("display.max_columns", None, "display.width", 200, "display.max_colwidth", 40):
        print(table.to_string())
    if args.json:
        print(table.to_json())
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    """Every run in a store with its state as readers derive it; damaged runs say why."""
    from pathlib import Path

    from core.runs import RunStore

    if not Path(args.store).is_dir():
        raise CliError(f"run store not found: {args.store}")
    rows = [r.summary() for r in RunStore(args.store).runs()]
    for row in rows:
        metrics = "  ".join(f"{k} {row[k]:.3f}" for k in ("top1", "mistake_severity", "hdist@5") if row.get(k) is not None)
        line = f"{row['run_id']:<40} {row['status']:<11} {str(row.get('targets') or row.get('kind') or ''):<12} {metrics}"
        print(line + (f"\n    {row['error']}" if row["status"] in ("damaged", "failed", "interrupted") and row["error"] else ""))
    if not rows:
        print(f"no runs in {args.store}")
    if args.json:
        print(json.dumps([{"run_id": r["run_id"], "state": r["status"]} | {k: v for k, v in r.items() if k not in ("run_id", "status")}
                          for r in rows], default=str))
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    """Categorize new products with a finished run; streams the file, writes nothing on bad input."""
    from pathlib import Path

    from tqdm import tqdm

    from core.predictor import OUTPUT_SUFFIXES, Predictor

    out = Path(args.out)
    if out.suffix.lower() not in OUTPUT_SUFFIXES:
        raise CliError(f"--out must end in {', '.join(OUTPUT_SUFFIXES)}; got {out.name}")
    if not out.parent.is_dir():
        raise CliError(f"output folder not found: {out.parent}")
    if args.top_k < 1:
        raise CliError(f"--top-k must be at least 1; got {args.top_k}")
    predictor = Predictor.load(args.run_dir, clip_checkpoint=args.clip_checkpoint)
    print(predictor.encoder_choice.note, file=sys.stderr)
    given = {name: getattr(args, name, None) for name in ("data", "text_columns", "id_column", "image_column", "image_dir",
                                                           "image_pattern", "embeddings", "embedding_ids", "max_rows")}
    if args.column_names:
        given["column_names"] = [c.strip() for c in args.column_names.split(",") if c.strip()]
    config = predictor.input_config(**given)
    with tqdm(desc="categorizing", unit=" items", file=sys.stderr, disable=args.quiet) as bar:
        result = predictor.predict_file(out, config, top_k=args.top_k, review_risk=args.review_risk,
                                        chunk_rows=args.chunk_rows, progress=bar.update)
    print(f"{result['rows']} items categorized into {out}; {result['review']} flagged for review "
          f"(risk above {args.review_risk})")
    if args.json:
        print(json.dumps({"run_id": predictor.run.name, "encoder": predictor.encoder.identity} | result))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m core", description="Taxolens: taxonomy-aware categorization tools.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("taxonomy", help="load and validate a taxonomy file, print a summary")
    p.add_argument("path")
    p.add_argument("--format", choices=FORMATS, help="override format detection")
    p.add_argument("--json", action="store_true", help="print a JSON summary as the last line")
    p.add_argument("--show-problems", type=int, default=10, metavar="N", help="list the first N problems (default 10)")
    p.set_defaults(func=cmd_taxonomy)

    t = sub.add_parser("train", help="train a categorizer with the chosen label representation and evaluate it")
    settings.add_arguments(t, required=("data", "label_columns", "text_columns"))
    t.add_argument("--out", required=True, metavar="RUNS_DIR", help="run store folder")
    t.add_argument("--json", action="store_true", help="print the run id, folder and metrics as JSON on the last line")
    t.add_argument("--quiet", action="store_true", help="no progress bars")
    t.set_defaults(func=cmd_train)

    r = sub.add_parser("run", help="execute a queued run folder (used by the app)")
    r.add_argument("run_dir")
    r.set_defaults(func=cmd_run)

    pr = sub.add_parser("predict", help="categorize new products with a finished run")
    pr.add_argument("run_dir", metavar="RUN_DIR")
    settings.add_arguments(pr, ("data",), required=("data",), skip=NOT_PREDICT_SETTINGS)
    pr.add_argument("--clip-checkpoint", metavar="PATH", help="the CLIP checkpoint the run was trained with, if any")
    pr.add_argument("--out", required=True, metavar="OUT", help="output file: .parquet, .csv or .jsonl")
    pr.add_argument("--top-k", type=int, default=5, help="answers per item (default 5)")
    pr.add_argument("--review-risk", type=float, default=DEFAULT_REVIEW_RISK,
                    help=f"flag items whose answer's expected tree distance exceeds this (default {DEFAULT_REVIEW_RISK})")
    pr.add_argument("--chunk-rows", type=int, default=20_000, help="rows read and scored at a time (memory stays flat)")
    pr.add_argument("--json", action="store_true", help="print a JSON summary as the last line")
    pr.add_argument("--quiet", action="store_true", help="no progress bar")
    pr.set_defaults(func=cmd_predict)

    rs = sub.add_parser("runs", help="list the runs in a store with their state and headline metrics")
    rs.add_argument("store", metavar="RUNS_DIR")
    rs.add_argument("--json", action="store_true", help="print the list as JSON on the last line")
    rs.set_defaults(func=cmd_runs)

    c = sub.add_parser("compare", help="compare finished runs side by side")
    c.add_argument("run_dirs", nargs="+")
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=cmd_compare)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.func
    try:
        return handler(args)
    except (CliError, TaxonomyError, ValueError, FileNotFoundError, KeyError, OSError, EncoderUnavailable) as exc:
        message = str(exc).strip("'\"")
        print(f"error: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
