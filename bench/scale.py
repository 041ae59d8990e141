"""Catalog scale on one machine: every figure of the 'Catalog scale' section of BENCHMARKS.md.

    .venv/bin/python bench/scale.py                 # all measurements (~15 min on 2 cores)
    .venv/bin/python bench/scale.py taxonomy targets step   # a subset

Each measurement runs in a fresh subprocess (so peak memory is its own) and reports the median
of several repeats. Raw results: bench/results/scale.json.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
GOOGLE = ROOT.parent / "shared" / "data" / "taxonomies" / "google-product-taxonomy-with-ids.en-US.txt"
WORK = Path(os.environ.get("TAXOLENS_BENCH_DIR", "/tmp/taxolens-bench"))



def target_defaults() -> dict:
    """The declared defaults of the settings targets read (core/settings.py), for build_targets."""
    from core import settings

    return {name: settings.get(name).default for name in settings.representation_settings()[1:]}

def median_time(fn, repeats: int = 5) -> tuple[float, list[float]]:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), times


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ----- measurements (each returns a dict) --------------------------------------------------------
def m_taxonomy() -> dict:
    from synthetic_taxonomy import synthetic_paths

    from core.taxonomy.formats import load_taxonomy

    def full(source):
        tax = load_taxonomy(source)
        return tax.distance_matrix(tax.leaves)

    out = {}
    if GOOGLE.exists():
        med, runs = median_time(lambda: full(GOOGLE))
        out["google_5595_load_validate_distances_s"] = med
        out["google_runs"] = runs
    text = "\n".join(synthetic_paths(20000)).encode()
    med, runs = median_time(lambda: full(text), repeats=3)
    tax = load_taxonomy(text)
    out.update({"synthetic_20000_load_validate_distances_s": med, "synthetic_runs": runs,
                "synthetic_nodes": len(tax), "synthetic_leaves": len(tax.leaves), "synthetic_depth": tax.max_depth,
                "peak_rss_mb": peak_rss_mb()})
    return out


def m_encoders() -> dict:
    import torch

    from core.data.encoders import encode_text_trimmed, label_embeddings, load_encoder
    from core.taxonomy.formats import load_taxonomy

    tax = load_taxonomy(GOOGLE)
    names = [tax.names[i] for i in range(len(tax))]
    cache = Path(tempfile.mkdtemp(prefix="encoder-cache-"))  # empty, so the first embedding is really cold
    minilm = load_encoder("minilm").encoder
    t = time.perf_counter()
    label_embeddings(tax, range(len(tax)), minilm, "name", cache_dir=cache)
    cold = time.perf_counter() - t
    warm, warm_runs = median_time(lambda: label_embeddings(tax, range(len(tax)), minilm, "name", cache_dir=cache))
    clip = load_encoder("clip-random").encoder
    sample = names[:512]
    trimmed, _ = median_time(lambda: clip.encode_text(sample), repeats=3)
    tokens = clip.tokenizer(sample[:128])

    def full_context():
        with torch.inference_mode():
            clip.model.encode_text(tokens)

    untrimmed, _ = median_time(full_context, repeats=3)
    with torch.inference_mode():
        same = float((clip.model.encode_text(tokens[:8]) - encode_text_trimmed(clip.model, tokens[:8])).abs().max())
    return {"minilm_names_per_s_cold": len(names) / cold, "minilm_cold_s": cold, "minilm_cached_reembed_5595_s": warm,
            "minilm_cached_runs": warm_runs, "clip_random_names_per_s_trimmed": len(sample) / trimmed,
            "clip_random_names_per_s_full_77_tokens": 128 / untrimmed, "clip_trimmed_max_abs_diff": same}


def m_targets(c: int) -> dict:
    from core.labels.targets import build_targets

    rng = np.random.default_rng(0)
    e = rng.normal(size=(c, 384)).astype(np.float32)
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    base = peak_rss_mb()
    med, runs = median_time(lambda: build_targets("semantic", embeddings=e, **target_defaults()), repeats=3)
    t = build_targets("semantic", embeddings=e, **target_defaults())
    return {"classes": c, "neighbours_and_targets_s": med, "runs": runs, "stored_mb": t.nbytes / 1e6,
            "peak_rss_growth_mb": peak_rss_mb() - base, "peak_rss_mb": peak_rss_mb()}


def _features_file(n: int, d: int) -> Path:
    path = WORK / f"features-{n}x{d}.npy"
    if not path.exists():
        WORK.mkdir(parents=True, exist_ok=True)
        mm = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, d))
        rng = np.random.default_rng(0)
        for start in range(0, n, 100_000):
            mm[start:start + 100_000] = rng.normal(size=(min(100_000, n - start), d)).astype(np.float32)
        mm.flush()
        del mm
    return path


def m_train(n: int = 1_000_000, d: int = 896, c: int = 5595, epoch_items: int = 200_000, batch: int = 1024) -> dict:
    import torch

    from core.labels.targets import build_targets
    from core.training.train import TrainConfig, train_model

    x = np.load(_features_file(n, d), mmap_mode="r")
    rng = np.random.default_rng(1)
    y = rng.integers(0, c, size=n)
    mask = np.ones((n, 1), dtype=bool)
    train_idx = rng.choice(n, size=epoch_items, replace=False)
    val_idx = rng.choice(n, size=5000, replace=False)
    emb = rng.normal(size=(c, 384)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    targets = build_targets("semantic", embeddings=emb, **target_defaults())
    cfg = TrainConfig(epochs=1, batch_size=batch, dropout=0.0, patience=0, members=1)  # one model's step
    t = time.perf_counter()
    train_model(x, mask, [("features", 0, d)], y, train_idx, val_idx, targets, cfg, label_embeddings=emb)
    epoch_s = time.perf_counter() - t
    hidden = 512
    matmul_params = d * hidden + (hidden + 1) * hidden + hidden * c
    flops_per_sample = 6 * matmul_params  # forward 2x, backward 4x
    achieved = flops_per_sample * epoch_items / epoch_s / 1e9
    a, b = torch.randn(batch, hidden), torch.randn(hidden, c)
    bare_s, _ = median_time(lambda: a @ b, repeats=20)
    bare = 2 * batch * hidden * c / bare_s / 1e9
    return {"items": n, "dims": d, "classes": c, "epoch_items": epoch_items, "epoch_s_incl_validation": epoch_s,
            "samples_per_s": epoch_items / epoch_s, "achieved_gflops": achieved, "bare_matmul_gflops": bare,
            "share_of_bare_matmul": achieved / bare, "features_file_gb": n * d * 4 / 1e9, "peak_rss_mb": peak_rss_mb(),
            "threads": torch.get_num_threads()}


def m_step(c: int = 5595, d: int = 896, batch: int = 1024) -> dict:
    import torch

    from core.labels.targets import build_targets
    from core.training.model import FusionClassifier

    rng = np.random.default_rng(0)
    emb = rng.normal(size=(c, 384)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    x, y = torch.randn(batch, d), torch.from_numpy(rng.integers(0, c, size=batch))
    mask = torch.ones(batch, 1, dtype=torch.bool)
    def timed_step(kind: str) -> float:
        targets = build_targets(kind, embeddings=emb, n_classes=c, **target_defaults())
        buffers = targets.torch_buffers()
        torch.manual_seed(0)
        model = FusionClassifier([("f", 0, d)], c, 512, dropout=0.0)
        opt = torch.optim.AdamW(model.parameters())

        def step():
            logits, _ = model(x, mask)
            loss = targets.loss(logits, y, buffers)
            opt.zero_grad()
            loss.backward()
            opt.step()

        for _ in range(3):
            step()
        return median_time(step, repeats=15)[0] * 1000

    out = {f"{kind}_step_ms": timed_step(kind) for kind in ("onehot", "semantic")}  # declared-once: ok (the two measured)
    out["ratio_semantic_over_cross_entropy"] = out["semantic_step_ms"] / out["onehot_step_ms"]
    plain = torch.nn.CrossEntropyLoss()
    logits = torch.randn(batch, c, requires_grad=True)
    sem = build_targets("semantic", embeddings=emb, **target_defaults())
    buf = sem.torch_buffers()
    out["loss_only_ce_ms"] = median_time(lambda: plain(logits, y).backward(), repeats=20)[0] * 1000
    out["loss_only_semantic_ms"] = median_time(lambda: sem.loss(logits, y, buf).backward(), repeats=20)[0] * 1000
    return out


def m_sklearn() -> dict:
    """Same features (Flipkart titles, MiniLM), same split: our trainer vs LogisticRegression / SGDClassifier."""

    from sklearn.linear_model import LogisticRegression, SGDClassifier

    from bench.label_representations import DATASETS
    from core.labels.targets import build_targets
    from core.training.experiment import ExperimentConfig, prepare
    from core.training.train import TrainConfig, train_model

    prepared = prepare(ExperimentConfig(**DATASETS["flipkart-text"], encoder="minilm"))
    f, s, y = prepared.features, prepared.split, prepared.dataset.labels
    x = f.matrix
    c = len(prepared.dataset.classes)
    results = {}
    for name, clf in (("sklearn LogisticRegression (lbfgs)", LogisticRegression(max_iter=200)),
                      ("sklearn SGDClassifier (log loss)", SGDClassifier(loss="log_loss", max_iter=20, tol=None, random_state=0))):
        t = time.perf_counter()
        clf.fit(x[s.train], y[s.train])
        took = time.perf_counter() - t
        results[name] = {"seconds": took, "val_top1": float((clf.predict(x[s.val]) == y[s.val]).mean())}
    target = max(r["val_top1"] for r in results.values())
    history = []
    started = time.perf_counter()

    def log(epoch):
        history.append((time.perf_counter() - started, epoch.val_top1))

    config = TrainConfig(patience=0, members=1)  # one model, the declared epochs, every one of them
    train_model(x, f.mask, f.slices, y, s.train, s.val, build_targets("onehot", n_classes=c), config,
                label_embeddings=prepared.label_emb, progress=log)
    reached = next((t for t, top1 in history if top1 >= target), None)
    results["taxolens trainer (onehot, fusion MLP)"] = {"seconds_to_sklearn_best": reached, "best_val_top1": max(v for _, v in history),
                                                        f"seconds_{config.epochs}_epochs": history[-1][0]}
    return {"classes": c, "train_items": int(len(s.train)), "val_items": int(len(s.val)), "target_val_top1": target, "results": results}


def m_app() -> dict:
    """Render time of the Similarity and Errors pages with the Google taxonomy active (AppTest, cold then warm)."""
    import pandas as pd
    from streamlit.testing.v1 import AppTest

    from core import files
    from core.runs.status import set_status
    from core.runs.store import RunStore, write_parquet
    from core.taxonomy.formats import load_taxonomy

    os.environ["TAXOLENS_RUNS"] = str(WORK / "app-runs")
    os.environ["TAXOLENS_CACHE"] = str(WORK / "app-cache")
    tax = load_taxonomy(GOOGLE)
    leaves = tax.leaves
    rng = np.random.default_rng(0)
    n = 20_000
    true = rng.choice(leaves, size=n)
    pred = np.where(rng.random(n) < 0.8, true, rng.choice(leaves, size=n))
    names = {i: tax.path_str(i) for i in leaves}
    frame = pd.DataFrame({"id": np.arange(n).astype(str), "text": "product", "true_label": [names[i] for i in true],
                          "true_index": 0, "pred_index": 0})
    for r in range(1, 6):
        frame[f"pred_{r}"] = [names[i] for i in (pred if r == 1 else rng.choice(leaves, size=n))]
        frame[f"prob_{r}"] = rng.random(n) / r
        frame[f"sim_{r}"] = rng.random(n)
    frame["correct"] = frame.pred_1 == frame.true_label
    frame["tree_distance"] = tax.distance(pred, true)
    frame["semantic_distance"] = rng.random(n)
    run_dir = RunStore(WORK / "app-runs").create({"targets": "onehot"}).path
    write_parquet(run_dir / "predictions.parquet", frame)
    files.write_json(run_dir / "metrics.json", {"plain": {"top1": 0.8, "mistake_severity": 3.0, "hdist@5": 3.0, "semsim@5": 0.3}, "crm": {}})  # declared-once: ok (made-up numbers)
    set_status(run_dir, "done")
    out = {}
    source = {"bytes": GOOGLE.read_bytes(), "format": None, "name": GOOGLE.name}
    for page in ("similarity", "errors"):
        at = AppTest.from_file(str(ROOT / "pages" / f"{page}.py"), default_timeout=900)
        at.session_state["taxonomy_source"] = source
        t = time.perf_counter()
        at.run()
        cold = time.perf_counter() - t
        assert not at.exception, [e.value for e in at.exception]
        warm, _ = median_time(at.run, repeats=3)
        out[page] = {"cold_s": cold, "warm_rerun_s": warm}
    return out


MEASURES = {"taxonomy": m_taxonomy, "encoders": m_encoders, "targets": lambda: [m_targets(5595), m_targets(20000)],
            "train": m_train, "step": m_step, "sklearn": m_sklearn, "app": m_app}


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--one":
        print(json.dumps(MEASURES[sys.argv[2]](), default=float))
        return
    chosen = sys.argv[1:] or list(MEASURES)
    out_path = ROOT / "bench" / "results" / "scale.json"
    results = json.loads(out_path.read_text()) if out_path.exists() else {}
    for name in chosen:
        t = time.perf_counter()
        proc = subprocess.run([sys.executable, __file__, "--one", name], capture_output=True, text=True, cwd=ROOT)
        if proc.returncode != 0:
            print(f"{name}: FAILED\n{proc.stderr[-3000:]}")
            continue
        results[name] = json.loads(proc.stdout.strip().splitlines()[-1])
        print(f"{name} ({time.perf_counter() - t:.0f} s): {json.dumps(results[name], default=float)[:600]}", flush=True)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(results, indent=2, default=float))


if __name__ == "__main__":
    main()
