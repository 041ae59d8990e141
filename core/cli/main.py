"""Command line: `python -m core taxonomy|train|sweep|compare ...`. Bad input (a TaxolensError) exits 2 with one
readable message; anything else is a bug in Taxolens: it says so, prints the traceback and exits 1."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import textwrap
import traceback
from collections import Counter
from collections.abc import Callable, Sequence

from core import settings
from core.errors import TaxolensError
from core.evaluation.registry import KEY_METRICS, METRICS, RESAMPLES, SELECTIVE_PREFIXES, TOP_K, shown_keys
from core.scale.sweep import DEFAULT_OBJECTIVES, DEFAULT_SEARCH, DEFAULT_SEEDS, DEFAULT_TRIALS, SEARCHES
from core.settings import DEFAULT_FOLDS, DEFAULT_REVIEW_RISK
from core.taxonomy.formats import FORMATS, load_taxonomy

EXIT_BUG = 1
EXIT_BAD_INPUT = 2
# data settings that describe training labels or splits, which `predict` has no use for
NOT_PREDICT_SETTINGS = ("label_columns", "use_text", "max_depth", "taxonomy", "taxonomy_format", "val_fraction",
                        "test_fraction")


class CliError(TaxolensError):
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


class ProgressBars:
    """tqdm bars for the pipeline's stages, and one line per epoch."""

    def __init__(self, quiet: bool = False, members: int = 1) -> None:
        from tqdm import tqdm

        self.tqdm, self.quiet, self.bars, self.members = tqdm, quiet, {}, members

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
            member = f"member {log.member + 1}, " if self.members > 1 else ""
            self.tqdm.write(f"{member}epoch {log.epoch + 1}: loss {log.train_loss:.4f}  val top1 {log.val_top1:.3f}  "
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
    for key in (*shown_keys(), *(k for k in plain if k not in METRICS and k.startswith(SELECTIVE_PREFIXES))):
        value = plain.get(key)
        extra = f"   (CRM re-ranked: {crm[key]:.4f})" if crm.get(key) is not None and key in KEY_METRICS else ""
        print(f"  {key:<18}{'n/a' if value is None else f'{value:.4f}'}{extra}")
    if as_json:
        print(json.dumps({"run_id": run_dir.name, "run_dir": str(run_dir)} | plain | {"crm": crm, "selective": summary.get("selective", [])}))


def cmd_train(args: argparse.Namespace) -> int:
    from core.runs.store import RunStore
    from core.settings import config_from_args
    from core.training.experiment import check_inputs, execute_run

    config = config_from_args(args)
    dataset = check_inputs(config)
    run_dir = RunStore(args.out).create(config.to_dict()).path
    progress = ProgressBars(quiet=args.quiet, members=config.members)
    print(f"run {run_dir.name} started in {run_dir}", file=sys.stderr)
    try:
        summary = execute_run(run_dir, on_epoch=progress.epoch, on_event=progress.event, dataset=dataset)
    finally:
        progress.close()
    print_result(run_dir, summary, args.json)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """Execute an already created (queued) run folder; what the app launches in the background."""
    from core.runs.progress import ProgressWriter
    from core.runs.status import claim
    from core.runs.store import Run
    from core.training.experiment import execute_run

    run = Run.open(args.run_dir)
    if run.state != "queued":
        claim(run.path)  # raises the readable refusal; nothing in the folder is touched
    if run.kind == "audit":  # launched from the Training page: progress.json follows the folds
        from core.training.audit import fold_progress, run_audit

        summary = run_audit(run.experiment_config(), int(run.config["folds"]), run.path,
                            on_event=fold_progress(ProgressWriter(run.path)))
        print_result(run.path, summary, as_json=False)
        return 0
    summary = execute_run(run.path, on_epoch=lambda log: print(f"epoch {log.epoch + 1} done", flush=True),
                          on_event=ProgressWriter(run.path))
    print_result(run.path, summary, as_json=False)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    import pandas as pd

    from core.runs.tables import compare, split_comparison

    if args.baseline:
        return compare_with_baseline(args)
    table = compare(args.run_dirs)
    metrics, settings = split_comparison(table)
    width = min(shutil.get_terminal_size((100, 24)).columns, 120)
    notes = settings.loc["encoder"] if "encoder" in settings.index else pd.Series(dtype=str)
    with pd.option_context("display.max_colwidth", 30):  # blocks of columns that fit the terminal, not 400-column lines
        print(metrics.round(4).to_string(line_width=width, na_rep="n/a"))
        print()
        print(settings.drop(index=["encoder"], errors="ignore").to_string(line_width=width))
    for run_id, note in notes.items():
        print(textwrap.fill(f"encoder of {run_id}: {note}", width=width, subsequent_indent="  "))
    if args.json:
        print(table.to_json())
    return 0


def _signed(value: object) -> str:
    return "n/a" if value is None else f"{value:+.4f}"


def compare_with_baseline(args: argparse.Namespace) -> int:
    """Each run against the baseline on the same items: differences with 95% paired-bootstrap
    intervals (METHOD.md, 'Comparing two runs') and the branches that got better or worse."""
    from pathlib import Path

    from core.evaluation.comparison import compare_runs
    from core.runs.store import Run

    def table_of(run: str) -> object:
        return Run.open(run).predictions()

    if args.resamples < 1000:
        raise CliError(f"--resamples must be at least 1000 (METHOD.md); got {args.resamples}")
    base = table_of(args.baseline)
    report = {"baseline": Path(args.baseline).name, "resamples": args.resamples, "runs": {}}
    for run in args.run_dirs:
        metrics, subtrees = compare_runs(base, table_of(run), resamples=args.resamples)
        name = Path(run).name
        print(f"{name} against {report['baseline']} ({len(base)} items; 95% paired-bootstrap intervals, {args.resamples} resamples)")
        for key, row in metrics.iterrows():
            interval = "" if row["diff"] is None else f"  [{row['lo']:+.4f}, {row['hi']:+.4f}]"
            values = " -> ".join("n/a" if v is None else f"{v:.4f}" for v in (row["baseline"], row["candidate"]))
            print(f"  {key:<18}{values:<20}{_signed(row['diff'])}{interval}")
        changed = subtrees[subtrees["verdict"] != "same"]
        print(f"  branches: {(subtrees['verdict'] == 'better').sum()} better, {(subtrees['verdict'] == 'worse').sum()} worse, "
              f"{(subtrees['verdict'] == 'same').sum()} same (error rate, then mistake severity)")
        for _, row in pd_concat_ends(changed, args.show_branches).iterrows():
            print(f"    {row['verdict']:<7}{row['path']:<50} error rate {row['error_rate_baseline']:.3f} -> "
                  f"{row['error_rate_candidate']:.3f}  severity {row['mean_severity_baseline']:.2f} -> {row['mean_severity_candidate']:.2f}"
                  f"  ({int(row['support'])} items)")
        report["runs"][name] = {"metrics": metrics.to_dict(orient="index"),
                                "subtrees": subtrees.to_dict(orient="records")}
    if args.json:
        print(json.dumps(report, default=float))
    return 0


def pd_concat_ends(frame: object, n: int) -> object:
    """The n most improved and the n most worsened rows of a table sorted best first."""
    import pandas as pd

    if len(frame) <= 2 * n:
        return frame
    return pd.concat([frame.head(n), frame.tail(n)])


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Import another categorizer's predictions as a run (see core/runs/importer.py)."""
    import numpy as np

    from core.data.encoders import read_matrix
    from core.data.tables import read_table
    from core.runs.importer import ImportSpec, import_run, read_class_list

    if (args.probabilities is None) != (args.classes is None):
        raise CliError("--probabilities and --classes go together")
    if bool(args.pred_columns) == (args.probabilities is not None):
        raise CliError("give either --pred-columns or --probabilities with --classes")
    frame = read_table(args.predictions)
    matrix = None
    if args.probabilities is not None:
        matrix = np.asarray(read_matrix(args.probabilities, "items x classes"))
    spec = ImportSpec(args.true_column, args.pred_columns or [], args.score_columns or [], args.id_column,
                      args.text_columns or [])
    progress = ProgressBars(quiet=args.quiet)
    try:
        run_dir, summary = import_run(args.out, frame, spec, source=args.predictions, taxonomy_path=args.taxonomy,
                                      taxonomy_format=args.taxonomy_format, probabilities=matrix,
                                      class_list=read_class_list(args.classes) if args.classes else None,
                                      encoder=args.encoder or settings.get("encoder").default,
                                      template=args.template or settings.get("template").default,
                                      clip_checkpoint=args.clip_checkpoint, name=args.name, on_event=progress.event)
    finally:
        progress.close()
    print_result(run_dir, summary, args.json)
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    """K-fold out-of-fold predictions for every product, label issues ranked for review."""
    from core.runs.store import RunStore
    from core.settings import config_from_args
    from core.training.audit import run_audit
    from core.training.experiment import check_inputs

    config = config_from_args(args)
    if args.folds < 2:
        raise CliError(f"--folds must be between 2 and the number of products; got {args.folds}")
    dataset = check_inputs(config)
    if not 2 <= args.folds <= len(dataset.labels):
        raise CliError(f"--folds must be between 2 and the number of products ({len(dataset.labels)}); got {args.folds}")
    run_dir = RunStore(args.out).create(config.to_dict() | {"kind": "audit", "folds": args.folds}, name="audit").path
    progress = ProgressBars(quiet=args.quiet)
    print(f"audit {run_dir.name} started in {run_dir}", file=sys.stderr)
    try:
        summary = run_audit(config, args.folds, run_dir, on_event=progress.event, dataset=dataset)
    finally:
        progress.close()
    if not summary.get("cancelled"):
        print(f"{summary['label_issues']} likely label errors among {summary['n_test']} products "
              "(review them on the Errors page, audit view)")
    print_result(run_dir, summary, args.json)
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from core.scale import cluster, sweep
    from core.training.experiment import check_inputs

    config = settings.config_from_args(args)
    space = sweep.load_space(args.space)
    dims = sweep.parse_space(space, config)
    objectives = sweep.parse_objectives(args.objectives)
    if args.trials < 1:
        raise CliError(f"--trials must be at least 1; got {args.trials}")
    if args.seeds == 1:
        raise CliError("--seeds must be 0 (no report) or at least 2 (a 95% interval needs two seeds)")
    if args.search == "grid" and sweep.grid_size(dims) > args.trials:
        raise CliError(f"the grid has {sweep.grid_size(dims)} points but --trials is {args.trials}; raise --trials or narrow the space")
    address = cluster.resolve_address(args.ray_address)
    if address:
        cluster.check_reachable(address)
    dataset = check_inputs(config)
    record = run_sweep(config, dims, space, objectives, trials=args.trials, seeds=args.seeds, search=args.search,
                       address=address, out=args.out, quiet=args.quiet, dataset=dataset)
    if args.json:
        print(json.dumps(sweep.public(record)))
    return 0


def run_sweep(config: settings.ExperimentConfig, dims: list, space: object, objectives: list[tuple[str, str]], *, trials: int,
              seeds: int, search: str, address: str | None, out: str, quiet: bool, dataset: object = None,
              sweep_id: str | None = None, on_event: Callable | None = None) -> dict:
    """The search, its table, then (seeds >= 2) the test-split report; progress on stderr."""
    from core.scale import sweep

    progress = ProgressBars(quiet=quiet)
    bar = None if quiet else progress.tqdm(total=sweep.grid_size(dims) if search == "grid" else trials, desc="trials",
                                           file=sys.stderr)
    try:
        record = sweep.sweep(config, dims, objectives, trials=trials, store=out, search=search, address=address,
                             raw_space=space, on_event=on_event or progress.event, dataset=dataset, sweep_id=sweep_id,
                             on_trial=(lambda _: bar.update(1)) if bar is not None else None)
        print(f"sweep {record['sweep_id']} on {record['engine']} ({record['address']}): {len(record['trials'])} trials, "
              f"scored on the validation split")
        print_trials(record, objectives)
        if seeds >= 2 and record["pareto"] and record["state"] == "done":
            record["report"] = sweep.report(out, record["sweep_id"], seeds=seeds, address=address, on_event=on_event or progress.event)
            print(sweep.format_report(record["report"]))
    finally:
        if bar is not None:
            bar.close()
        progress.close()
    return record


def cmd_sweep_run(args: argparse.Namespace) -> int:
    """Execute a sweep the app requested (RUNS/_sweeps/ID/request.json); what the Tune page launches."""
    from pathlib import Path

    from core.runs.progress import ProgressWriter
    from core.scale import sweep

    folder = Path(args.folder)
    asked = json.loads((folder / "request.json").read_text())
    config = settings.ExperimentConfig.from_dict(asked["base"])
    try:
        run_sweep(config, sweep.parse_space(asked["space"], config), asked["space"], sweep.parse_objectives(asked["objectives"]),
                  trials=asked["trials"], seeds=asked["seeds"], search=asked["search"], address=None,
                  out=str(folder.parents[1]), quiet=True, sweep_id=folder.name,
                  on_event=ProgressWriter(folder))  # the Tune page shows the embedding while the sweep starts
    except Exception as exc:  # the page shows it; run.log keeps the traceback
        sweep.mark_failed(folder, str(exc) or type(exc).__name__)
        raise
    return 0


def print_trials(record: dict, objectives: list[tuple[str, str]]) -> None:
    pareto = set(record["pareto"])
    for t in record["trials"]:
        scores = "  ".join(f"{m} {t['val'].get(m) if t['val'].get(m) is None else round(t['val'][m], 4)}" for m, _ in objectives)
        settings_text = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in t["config"].items())
        print(f"{'*' if t['run_id'] in pareto else ' '} {t['run_id']}  {scores}  {settings_text}")
    print("* = on the Pareto front of " + ", ".join(f"{m} ({d})" for m, d in objectives))


def cmd_sweep_report(args: argparse.Namespace) -> int:
    from core import files
    from core.scale import sweep

    folder = sweep.sweep_dir(args.out, args.sweep_id)
    rep = files.read_json(folder / "report.json")
    if rep is None or (args.seeds is not None and rep.get("seeds") != args.seeds):
        rep = sweep.report(args.out, args.sweep_id, seeds=args.seeds or DEFAULT_SEEDS, address=args.ray_address,
                           on_event=ProgressBars(quiet=args.quiet).event)
    print(sweep.format_report(rep))
    if args.json:
        print(json.dumps(rep))
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    """Every run in a store with its state as readers derive it; damaged runs say why."""
    from pathlib import Path

    from core.runs.store import RunStore
    from core.runs.tables import summary_row
    from core.training.predictor import model_problems

    if not Path(args.store).is_dir():
        raise CliError(f"run store not found: {args.store}")
    rows = []
    for run in RunStore(args.store).runs():
        row, problems = summary_row(run), model_problems(run)
        rows.append(row | ({"status": "damaged", "error": "; ".join(problems)} if problems else {}))
    for row in rows:
        metrics = "  ".join(f"{k} {row[k]:.3f}" for k in KEY_METRICS if row.get(k) is not None)
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

    from tqdm import tqdm

    from core.training.predictor import INPUT_SETTINGS, Predictor, output_path

    out = output_path(args.out)  # a SettingError (exit 2) unless .parquet, .csv or .jsonl
    if not out.parent.is_dir():
        raise CliError(f"output folder not found: {out.parent}")
    if args.top_k < 1:
        raise CliError(f"--top-k must be at least 1; got {args.top_k}")
    if args.chunk_rows < 1 or args.workers < 1:
        raise CliError("--chunk-rows and --workers must be at least 1")
    if not 0 <= args.review_risk < float("inf"):  # NaN fails every comparison
        raise CliError(f"--review-risk must be a tree distance of 0 or more; got {args.review_risk}")
    address = ray_address(args)
    device = settings.resolve_device(args.device or settings.get("device").default)
    predictor = Predictor.load(args.run_dir, clip_checkpoint=args.clip_checkpoint, device=device)
    print(predictor.encoder_choice.note, file=sys.stderr)
    given = {name: getattr(args, name, None) for name in INPUT_SETTINGS if name != "column_names"}
    if args.column_names:
        given["column_names"] = [c.strip() for c in args.column_names.split(",") if c.strip()]
    config = predictor.input_config(**given)
    guarantee = guaranteed_threshold(predictor, args)
    options = {"top_k": args.top_k, "review_risk": args.review_risk, "theta": guarantee.theta if guarantee else None}
    with tqdm(desc="categorizing", unit=" items", file=sys.stderr, disable=args.quiet) as bar:
        if address is not None:
            from core.scale.predict import predict_on_ray

            result = predict_on_ray(predictor, out, config, address=address or None, workers=args.workers, device=device,
                                    batch_rows=min(args.chunk_rows, 2_000), clip_checkpoint=args.clip_checkpoint,
                                    progress=bar.update, **options)
        else:
            result = predictor.predict_file(out, config, chunk_rows=args.chunk_rows, progress=bar.update, **options)
            result["engine"] = "one-process"
    print(f"{result['rows']} items categorized into {out} on {result['engine']}; {result['review']} flagged for review "
          f"(risk above {args.review_risk})")
    if guarantee is not None:
        result |= guarantee.to_dict()
        print(f"answers at target accuracy {guarantee.target:g} (confidence {guarantee.confidence:g}; threshold "
              f"{guarantee.theta:.4f}): {result['leaf_rate']:.1%} at the top category, {result['no_category']} left for a person")
    if args.json:
        print(json.dumps({"run_id": predictor.run.name, "encoder": predictor.encoder.identity} | result))
    return 0


def guaranteed_threshold(predictor: object, args: argparse.Namespace) -> object:
    """The run's climbing threshold when --target-accuracy or --confidence was given (the other takes its
    declared default), refitted from the stored validation climbs; None otherwise."""
    if args.target_accuracy is None and args.confidence is None:
        return None
    target, confidence = (settings.get(name).check(getattr(args, name) if getattr(args, name) is not None
                                                   else settings.get(name).default)
                          for name in ("target_accuracy", "confidence"))
    return predictor.guarantee(target, confidence)


def ray_address(args: argparse.Namespace) -> str | None:
    """None for the one-process path; "" for a local Ray (--ray); else the cluster's address, which must
    answer (checked here, in seconds, before any model is loaded or file written)."""
    from core.scale import cluster

    if not (args.ray or args.ray_address):
        return None
    address = cluster.resolve_address(args.ray_address)
    if address:
        cluster.check_reachable(address)
    return address or ""


def add_ray_arguments(parser: argparse.ArgumentParser, work: str) -> None:
    """--ray, --ray-address and --workers for a command that can run as a Ray Data pipeline."""
    g = parser.add_argument_group("Ray Data")
    g.add_argument("--ray", action="store_true", help=f"{work} as a Ray Data pipeline on a local Ray")
    g.add_argument("--ray-address", metavar="HOST:PORT", help=f"{work} as a Ray Data pipeline on this Ray cluster")
    g.add_argument("--workers", type=int, default=2, metavar="N", help="actors on Ray, one model each (default 2)")


def cmd_embed(args: argparse.Namespace) -> int:
    """Embed a table into FEATURES_DIR: chunked, cached per item, resumable; on Ray Data when asked."""
    import time
    from pathlib import Path

    from tqdm import tqdm

    from core.data import featuredir as features
    from core.data.encoders import cached_encoder

    config = settings.config_from_args(args, whole=False)
    if args.chunk_rows < 1 or args.workers < 1:
        raise CliError("--chunk-rows and --workers must be at least 1")
    if not Path(config.data).is_file():
        raise CliError(f"data file not found: {config.data}")
    if config.image_dir is not None and not Path(config.image_dir).is_dir():
        raise CliError(f"image folder not found: {config.image_dir}")
    address = ray_address(args)
    started = time.perf_counter()
    with tqdm(desc="embedding", unit=" items", file=sys.stderr, disable=args.quiet) as bar:
        if address is not None:
            from core.scale.embed import embed_on_ray

            stats = embed_on_ray(config, args.out, address=address or None, workers=args.workers,
                                 chunk_rows=args.chunk_rows, progress=bar.update)
        else:
            choice = cached_encoder(config.encoder, config.clip_checkpoint, config.device)
            print(choice.note, file=sys.stderr)
            stats = features.embed_file(config, choice.encoder, args.out, chunk_rows=args.chunk_rows, progress=bar.update)
            stats["engine"] = "one-process"
    stats["seconds"] = round(time.perf_counter() - started, 2)
    print(f"{stats['rows']} items in {args.out}: {stats['embedded']} embedded now, {stats['cached']} reused"
          + (f", {stats['images_unreadable']} images missing or unreadable (masked)" if stats["images_unreadable"] else ""))
    if args.json:
        print(json.dumps({"out": str(args.out)} | stats))
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

    e = sub.add_parser("evaluate", help="import another categorizer's predictions as a run and evaluate them")
    e.add_argument("--predictions", required=True, metavar="FILE", help="predictions file: .csv, .tsv, .parquet or .jsonl")
    e.add_argument("--true-column", required=True, metavar="COL", help="the given category (a path or a taxonomy id)")
    e.add_argument("--pred-columns", nargs="+", metavar="COL", help="ranked answers, best first")
    e.add_argument("--score-columns", nargs="+", metavar="COL", help="a score in [0, 1] per answer, same order")
    e.add_argument("--probabilities", metavar="NPY", help="(items x classes) probability matrix, rows in file order")
    e.add_argument("--classes", metavar="FILE", help="the matrix's classes, one per line")
    e.add_argument("--id-column", metavar="COL", help="item id column (row number without it)")
    e.add_argument("--text-column", dest="text_columns", action="append", metavar="COL", help="item text; repeat for more")
    e.add_argument("--name", help="a name for the run")
    settings.add_arguments(e, ("encoder",))
    settings.add_arguments(e, ("data",), skip=[s.name for s in settings.settings(["data"])
                                               if s.name not in ("taxonomy", "taxonomy_format")])
    e.add_argument("--out", required=True, metavar="RUNS_DIR", help="run store folder")
    e.add_argument("--json", action="store_true", help="print the run id, folder and metrics as JSON on the last line")
    e.add_argument("--quiet", action="store_true", help="no progress bars")
    e.set_defaults(func=cmd_evaluate)

    a = sub.add_parser("audit", help="K-fold out-of-fold predictions for every product: find likely label errors")
    settings.add_arguments(a, required=("data", "label_columns", "text_columns"))
    a.add_argument("--folds", type=int, default=DEFAULT_FOLDS, metavar="K", help=f"folds (K models; default {DEFAULT_FOLDS})")
    a.add_argument("--out", required=True, metavar="RUNS_DIR", help="run store folder")
    a.add_argument("--json", action="store_true", help="print the run id, folder and metrics as JSON on the last line")
    a.add_argument("--quiet", action="store_true", help="no progress bars")
    a.set_defaults(func=cmd_audit)

    w = sub.add_parser("sweep", help="search label representations with Ray Tune, scored on the validation split; "
                       "`sweep report SWEEP` re-evaluates the Pareto front over seeds")
    settings.add_arguments(w, required=("data", "label_columns", "text_columns"))
    g = w.add_argument_group("Sweep")
    g.add_argument("--space", metavar="FILE", help="search space, JSON or YAML (default: core/scale/sweep.py DEFAULT_SPACE)")
    g.add_argument("--trials", type=int, default=DEFAULT_TRIALS, metavar="N", help=f"trials to run (default {DEFAULT_TRIALS})")
    g.add_argument("--objectives", default=DEFAULT_OBJECTIVES, metavar="M:DIR,...",
                   help=f"validation metrics to optimise with max or min (default {DEFAULT_OBJECTIVES})")
    g.add_argument("--search", choices=list(SEARCHES), default=DEFAULT_SEARCH,
                   help=", ".join(f"{key}: {label}" for key, label in SEARCHES.items()) + f" (default {DEFAULT_SEARCH})")
    g.add_argument("--seeds", type=int, default=DEFAULT_SEEDS, metavar="N",
                   help=f"seeds for the test-split report on the Pareto front and one-hot (0 = no report; default {DEFAULT_SEEDS})")
    g.add_argument("--ray-address", metavar="HOST:PORT", help="an existing Ray cluster (default: RAY_ADDRESS, else a local Ray)")
    g.add_argument("--out", required=True, metavar="RUNS_DIR", help="run store folder")
    g.add_argument("--json", action="store_true", help="print the sweep as JSON on the last line")
    g.add_argument("--quiet", action="store_true", help="no progress bars")
    w.set_defaults(func=cmd_sweep)

    wr = sub.add_parser("sweep-report", prog="python -m core sweep report",
                        help="(also `sweep report`) test-split report of a sweep: mean and 95%% interval over seeds")
    wr.add_argument("sweep_id", metavar="SWEEP")
    wr.add_argument("--out", required=True, metavar="RUNS_DIR", help="run store folder")
    wr.add_argument("--seeds", type=int, metavar="N", help=f"re-run the report with N seeds (default: the stored report, else {DEFAULT_SEEDS})")
    wr.add_argument("--ray-address", metavar="HOST:PORT")
    wr.add_argument("--json", action="store_true")
    wr.add_argument("--quiet", action="store_true")
    wr.set_defaults(func=cmd_sweep_report)

    sr = sub.add_parser("sweep-run", help="execute a sweep requested by the app (RUNS/_sweeps/ID)")
    sr.add_argument("folder")
    sr.set_defaults(func=cmd_sweep_run)

    pr = sub.add_parser("predict", help="categorize new products with a finished run")
    pr.add_argument("run_dir", metavar="RUN_DIR")
    # the run fixes the encoder and its template; the checkpoint file and the device may be given
    settings.add_arguments(pr, ("data", "encoder", "selective"), required=("data",),
                           skip=(*NOT_PREDICT_SETTINGS, "encoder", "template"))
    pr.add_argument("--out", required=True, metavar="OUT", help="output file: .parquet, .csv or .jsonl")
    pr.add_argument("--top-k", type=int, default=TOP_K, help=f"answers per item (default {TOP_K})")
    pr.add_argument("--review-risk", type=float, default=DEFAULT_REVIEW_RISK,
                    help=f"flag items whose answer's expected tree distance exceeds this (default {DEFAULT_REVIEW_RISK})")
    pr.add_argument("--chunk-rows", type=int, default=20_000, help="rows read and scored at a time (memory stays flat)")
    add_ray_arguments(pr, "categorize")
    pr.add_argument("--json", action="store_true", help="print a JSON summary as the last line")
    pr.add_argument("--quiet", action="store_true", help="no progress bar")
    pr.set_defaults(func=cmd_predict)

    em = sub.add_parser("embed", help="embed a product table into a FEATURES_DIR (per-item cache, resumable, "
                        "optionally on Ray Data) for train/predict/sweep --features")
    settings.add_arguments(em, ("data", "encoder"), required=("data", "text_columns", "id_column"),
                           skip=(*NOT_PREDICT_SETTINGS, "features", "embeddings", "embedding_ids", "template"))
    em.add_argument("--out", required=True, metavar="FEATURES_DIR", help="features folder (created, or resumed)")
    em.add_argument("--chunk-rows", type=int, default=10_000, help="rows read and written at a time (default 10000)")
    add_ray_arguments(em, "embed")
    em.add_argument("--json", action="store_true", help="print the counts (embedded, cached, ...) as JSON on the last line")
    em.add_argument("--quiet", action="store_true", help="no progress bar")
    em.set_defaults(func=cmd_embed)

    rs = sub.add_parser("runs", help="list the runs in a store with their state and headline metrics")
    rs.add_argument("store", metavar="RUNS_DIR")
    rs.add_argument("--json", action="store_true", help="print the list as JSON on the last line")
    rs.set_defaults(func=cmd_runs)

    c = sub.add_parser("compare", help="compare finished runs side by side, or against a baseline with intervals")
    c.add_argument("run_dirs", nargs="+")
    c.add_argument("--baseline", metavar="RUN", help="compare each run to this one on the same items: differences with "
                   "95%% paired-bootstrap intervals and per-branch changes")
    c.add_argument("--resamples", type=int, default=RESAMPLES, help=f"bootstrap resamples (default {RESAMPLES}; at least 1000)")
    c.add_argument("--show-branches", type=int, default=5, metavar="N", help="list the N most improved and N most worsened branches")
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=cmd_compare)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:2] == ["sweep", "report"]:
        argv = ["sweep-report", *argv[2:]]
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.func
    try:
        return handler(args)
    except TaxolensError as exc:
        message = str(exc).strip("'\"")
        print(f"error: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # not the user's fault: say so, with what a bug report needs
        traceback.print_exc(file=sys.stderr)
        print(f"internal error (a bug in Taxolens, not your input): {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_BUG
