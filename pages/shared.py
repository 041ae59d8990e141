"""What every page shares: the active taxonomy and encoder (cached), the run store, the demo run,
and the one guard (app.py wraps every page in it) that shows a user's mistake as a message. No maths here."""

from __future__ import annotations

import contextlib
import hashlib
import os
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from core import files, settings
from core.data.encoders import EncoderChoice, label_embeddings, load_encoder
from core.data.tables import read_table
from core.display import plain
from core.errors import SettingError, TaxolensError
from core.evaluation.registry import explain, glossary
from core.labels.similarity import topk_neighbors
from core.runs import store as runs
from core.runs.importer import guess_spec
from core.runs.process import launch_background
from core.settings import ExperimentConfig
from core.taxonomy.formats import load_taxonomy
from core.taxonomy.tree import Taxonomy
from core.training.experiment import check_inputs


def _leave_legacy_multipage_mode() -> None:
    """Streamlit treats a `pages/` folder beside app.py as a legacy multipage app until app.py has
    called st.navigation once in the process; a first visit straight to /similarity would run the
    page without app.py's navigation. Clearing that flag and rerunning routes it through app.py."""
    from streamlit.runtime.pages_manager import PagesManager

    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()


_leave_legacy_multipage_mode()
ROOT = Path(__file__).resolve().parents[1]
SAMPLE_TAXONOMY = ROOT / "sample_data" / "taxonomy.txt"
SAMPLE_PRODUCTS = ROOT / "sample_data" / "products.csv"
APP_ENCODERS = ("auto", "minilm", "clip")  # clip-random is for tests and timing, not offered to people
SLIDER_HI = {"temperature": 2.0, "k": 100, "beta": 50.0}  # where a slider stops (a number box takes the declared range)
SAMPLE_EPOCHS = 8  # the app's runs on the sample catalog: a few minutes on two CPU cores
TRIAL_EPOCHS = 4  # each trial of the Tune page's sweep on the sample catalog


def runs_dir() -> Path:
    """The run store folder: $TAXOLENS_RUNS, or runs/ in the repository."""
    return Path(os.environ.get("TAXOLENS_RUNS", ROOT / "runs"))


STATE_FILE = "app_state.json"  # in the run store: what a browser refresh must not lose


@contextlib.contextmanager
def session_kept() -> Iterator[None]:
    """Around every page (app.py): a new browser session (a refresh) starts from the remembered settings
    and the uploaded taxonomy saved in the run store, and whatever a page changed of them is saved when
    it ends (even by st.rerun or st.stop)."""
    if "_persist" not in st.session_state:
        state = files.read_json(runs_dir() / STATE_FILE, {}) or {}
        st.session_state["_persist"] = dict(state.get("persist") or {})
        tax = state.get("taxonomy")
        if tax and Path(tax["path"]).is_file() and "taxonomy_source" not in st.session_state:
            st.session_state["taxonomy_source"] = {"bytes": Path(tax["path"]).read_bytes(), "format": tax["format"],
                                                   "name": tax["name"], "path": tax["path"]}
    try:
        yield
    finally:
        save_session()


def save_session() -> None:
    """Write the remembered settings and the taxonomy upload's file to the run store's state file."""
    src = st.session_state.get("taxonomy_source")
    if src is not None and "path" not in src:
        src["path"] = str(saved_upload(src["bytes"], src["name"]))
    state = {"persist": st.session_state.get("_persist", {}),
             "taxonomy": None if src is None else {k: src[k] for k in ("path", "format", "name")}}
    path = runs_dir() / STATE_FILE
    if state != files.read_json(path, None):
        path.parent.mkdir(parents=True, exist_ok=True)
        files.write_json(path, state)


def saved_upload(data: bytes, name: str) -> Path:
    """Uploads are written into the run store so the background run process can read them (and a
    refresh can find them again)."""
    folder = runs_dir() / "uploads" / hashlib.sha1(data).hexdigest()[:12]  # the user's own file name inside, for messages
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / Path(name).name
    if not path.exists():
        path.write_bytes(data)
    return path


@dataclass
class DataSource:
    """The product table a run or a sweep reads: its path, a preview, and the taxonomy to check it against."""

    path: str
    preview: pd.DataFrame
    taxonomy: str | None
    taxonomy_format: str | None


def data_source() -> DataSource:
    """The sample catalog or the user's uploaded product table (Training and Tune offer the same choice)."""
    choice = st.radio("Products", ["Sample catalog", "Upload a product table"], horizontal=True)
    if choice == "Sample catalog":
        return DataSource(str(SAMPLE_PRODUCTS), read_table(SAMPLE_PRODUCTS, nrows=200), str(SAMPLE_TAXONOMY), None)
    upload = st.file_uploader("Product table (.csv, .tsv, .parquet, .jsonl)", type=["csv", "tsv", "parquet", "jsonl"])
    if upload is None:
        st.stop()
    path = saved_upload(upload.getvalue(), upload.name)
    taxonomy, fmt = None, None
    src = st.session_state.get("taxonomy_source")
    if src and st.checkbox(f"Check the labels against the taxonomy from the Taxonomy page ({src['name']})", value=True):
        taxonomy, fmt = str(saved_upload(src["bytes"], src["name"])), src["format"]
    elif not src:
        st.caption("The taxonomy will be derived from the label paths (upload one on the Taxonomy page to check them against it).")
    return DataSource(str(path), read_table(path, nrows=200), taxonomy, fmt)


LABEL_HELP = ("A label column holds each product's category: a path such as 'Footwear > Boots > Rain Boots', or a name or id "
              "from the taxonomy. With one column per level, choose them top level first.")


def column_hint(source: DataSource) -> None:
    """Before the form: say so when no column looks like a category label."""
    cols = list(source.preview.columns)
    if guess_spec(cols)["true_column"] is None:
        st.info(plain(f"No column of {', '.join(cols)} looks like a category label: choose it below. " + LABEL_HELP))


def column_widgets(source: DataSource) -> dict:
    """Label, text and id column pickers (inside the caller's form), opening on the guessed columns;
    their choice as ExperimentConfig keywords."""
    cols = list(source.preview.columns)
    guess = guess_spec(cols)
    c = st.columns(3)
    label = c[0].multiselect("Label column(s), top level first", cols, default=[guess["true_column"]] if guess["true_column"] else [],
                             help=LABEL_HELP)
    text = c[1].multiselect("Text column(s)", cols, default=guess["text_columns"][:1])
    id_col = c[2].selectbox("Id column", ["(none)", *cols], index=1 + cols.index(guess["id_column"]) if guess["id_column"] else 0)
    return {"label_columns": label, "text_columns": text, "id_column": None if id_col == "(none)" else id_col}


def source_config(source: DataSource, columns: dict, **chosen: object) -> ExperimentConfig | None:
    """The run's config from the data source, the chosen columns and settings; None (with a message)
    when a label or text column is missing."""
    if not columns["label_columns"] or not columns["text_columns"]:
        st.error("Choose at least one label column and one text column.")
        return None
    return ExperimentConfig(data=source.path, taxonomy=source.taxonomy, taxonomy_format=source.taxonomy_format,
                            **columns, **chosen)


def guard(render: Callable[[], None]) -> None:
    """Run a page (app.py) or a part of one: a problem with the user's input (a TaxolensError) becomes one
    clear message; anything else is a bug in Taxolens and is shown as one, with its traceback."""
    try:
        render()
    except TaxolensError as exc:
        st.error(plain(exc))
    except Exception as exc:  # not the user's fault: say so, with what a bug report needs
        st.error(plain(f"Internal error (a bug in Taxolens, not your input): {type(exc).__name__}: {exc}"))
        with st.expander("Traceback, for a bug report"):
            st.code(traceback.format_exc(), language=None)


@st.cache_resource(show_spinner=False, max_entries=8)
def taxonomy_from_bytes(data: bytes, fmt: str | None, name: str) -> Taxonomy:
    return load_taxonomy(data, format=fmt, filename=name)


def taxonomy_key() -> str:
    src = st.session_state.get("taxonomy_source")
    data = src["bytes"] if src else SAMPLE_TAXONOMY.read_bytes()
    return hashlib.sha1(data + str(src.get("format") if src else "").encode()).hexdigest()[:16]


def current_taxonomy() -> tuple[Taxonomy, str]:
    """The taxonomy chosen on the Taxonomy page, or the sample catalog's."""
    src = st.session_state.get("taxonomy_source")
    if src is None:
        return taxonomy_from_bytes(SAMPLE_TAXONOMY.read_bytes(), None, "taxonomy.txt"), "Sample catalog"
    return taxonomy_from_bytes(src["bytes"], src["format"], src["name"]), src["name"]


def class_set(tax: Taxonomy) -> np.ndarray:
    """The classes the analysis pages use: the leaves, in taxonomy (path) order."""
    leaves = np.array(tax.leaves)
    return leaves[np.argsort([tax.path_str(int(i)) for i in leaves], kind="stable")]


@st.cache_resource(show_spinner="Loading the text encoder (first time only)…")
def encoder(kind: str) -> EncoderChoice:
    return load_encoder(kind)


@st.cache_data(show_spinner=False, max_entries=16)
def class_embeddings(tax_key: str, _tax: Taxonomy, kind: str, template: str) -> np.ndarray:
    classes = class_set(_tax)
    bar = st.progress(0.0, text=f"Embedding {len(classes)} category names…")
    vecs = label_embeddings(_tax, classes, encoder(kind).encoder, template,
                            progress=lambda d, t: bar.progress(d / max(t, 1), text=f"Embedding category names: {d}/{t}"))
    bar.empty()
    return vecs


@st.cache_data(show_spinner=False, max_entries=16)
def neighbours(tax_key: str, kind: str, template: str, _emb: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    return topk_neighbors(embeddings=_emb, k=k)


@st.cache_data(show_spinner=False, max_entries=8)
def class_distances(tax_key: str, _tax: Taxonomy) -> np.ndarray:
    return _tax.distance_matrix(class_set(_tax))


def persistent(key: str, default: object) -> str:
    """A widget key whose value survives reruns and page changes. Passing a changing `value=` would
    give the widget a new identity on the next run and silently drop the user's last change."""
    saved = st.session_state.setdefault("_persist", {})
    if key not in st.session_state:
        st.session_state[key] = saved.get(key, default)
    return key


def remember(*keys: str) -> None:
    """Copy widget values out of widget state, which Streamlit clears when a page is left."""
    st.session_state.setdefault("_persist", {}).update({k: st.session_state[k] for k in keys})


def remembered(key: str, default: object) -> object:
    return st.session_state.get("_persist", {}).get(key, default)


def default(name: str) -> object:
    """A setting's declared default (core/settings.py), the one place defaults are written."""
    return settings.get(name).default


def setting_widget(name: str, where: object = st, *, key: str | None = None, value: object = None,
                   slider: bool = False, options: list | None = None, hi: float | None = None, disabled: bool = False) -> object:
    """A widget for a declared setting (core/settings.py): its label, help, choices and bounds come from
    the declaration. With `key`, the value lives in session state (see `persistent`); else `value` or
    the declared default is the starting value. `hi` narrows the upper bound (e.g. k below C)."""
    s = settings.get(name)
    start = value if value is not None else s.default
    state = {"key": key} if key else {}
    common = {"help": s.help, "disabled": disabled} | state
    if s.type is bool:
        return where.checkbox(s.label, **({} if key else {"value": bool(start)}), **common)
    if s.choices:
        opts = options or list(s.choices)
        index = {} if key else {"index": opts.index(start) if start in opts else 0}
        return where.selectbox(s.label, opts, format_func=lambda v: s.choices.get(v, str(v)), **index, **common)
    lo, top, step = widget_bounds(s, hi, slider)
    cast = int if s.type is int else float
    bounds = {"min_value": cast(lo)} | ({"max_value": cast(top)} if top is not None else {}) | {"step": cast(step)}
    if cast is float and step < 1e-3:  # two decimals (Streamlit's default) would show a learning rate as 0.00
        bounds["format"] = "%.1e"
    initial = {} if key else {"value": cast(min(max(start, lo), top) if top is not None else max(start, lo))}
    if slider and top is not None:
        return where.slider(s.label, **bounds, **initial, **common)
    return where.number_input(s.label, **bounds, **initial, **common)


def widget_bounds(s: settings.Setting, hi: float | None = None, slider: bool = False) -> tuple[float, float | None, float]:
    """(lowest, highest or None, step) a widget offers for a numeric setting: the declared bounds (an
    open lower bound moves up one step), narrowed by `hi` and, for a slider, by SLIDER_HI."""
    is_int = s.type is int
    step = s.step or (1 if is_int else 0.01)
    lo = s.lo if s.lo is not None else (0 if is_int else 0.0)
    lo = lo + step if s.lo_open else lo
    caps = [v for v in (s.hi, hi, SLIDER_HI.get(s.name) if slider else None) if v is not None]
    return lo, (min(caps) if caps else None), step


def target_slider(where: object = st) -> float:
    """The target accuracy of guaranteed-accuracy answers, one value shared by Categorize and Errors."""
    value = setting_widget("target_accuracy", where, slider=True, hi=0.99,
                           key=persistent("target_accuracy", default("target_accuracy")))
    remember("target_accuracy")
    return float(value)


def encoder_controls() -> tuple[str, str]:
    """Encoder and prompt template pickers shared by the pages that embed category names."""
    cols = st.columns(2)
    kind = setting_widget("encoder", cols[0], key=persistent("encoder_kind", "auto"), options=list(APP_ENCODERS))
    template = setting_widget("template", cols[1], key=persistent("template", default("template")))
    remember("encoder_kind", "template")
    return kind, template


def encoder_banner(choice: EncoderChoice) -> None:
    """Always say which encoder produced the similarities, and how to get CLIP if it is missing."""
    if choice.encoder.identity.startswith("clip"):
        st.success(f"Active encoder: {choice.note}")
    else:
        st.info(f"Active encoder: {choice.note}  \nTo use CLIP, put an open_clip checkpoint on this machine and start the "
                "app with `TAXOLENS_CLIP_CHECKPOINT=/path/to/open_clip_model.safetensors make run`.")


@dataclass
class LabelSpace:
    """The active taxonomy's classes with their embeddings, as the analysis pages use them."""

    tax: Taxonomy
    key: str
    encoder: str
    template: str
    classes: np.ndarray
    emb: np.ndarray
    paths: list[str]


def label_space(too_few: str) -> LabelSpace | None:
    """Encoder pickers, the active-encoder banner, and the embedded leaf classes (None if under 3)."""
    kind, template = encoder_controls()
    encoder_banner(encoder(kind))
    tax, _ = current_taxonomy()
    key = taxonomy_key()
    classes = class_set(tax)
    if len(classes) < 3:
        st.warning(f"This taxonomy has fewer than 3 leaf categories; {too_few}")
        return None
    emb = class_embeddings(key, tax, kind, template)
    return LabelSpace(tax, key, kind, template, classes, emb, [tax.path_str(int(c)) for c in classes])


def sample_config(**overrides: object) -> ExperimentConfig:
    base = ExperimentConfig(data=str(SAMPLE_PRODUCTS), label_columns=["category_path"], text_columns=["title", "description"],
                            id_column="id", taxonomy=str(SAMPLE_TAXONOMY), epochs=SAMPLE_EPOCHS)
    return base.replace(**overrides)


def launch(config: ExperimentConfig, name: str | None = None, audit_folds: int | None = None) -> Path:
    """Check the data, then create a queued run (a K-fold audit of every product with `audit_folds`)
    and start it in a background process; the page can be left meanwhile. A problem with the data is
    raised here, before any run folder exists."""
    dataset = check_inputs(config)
    record = config.to_dict()
    if audit_folds is not None:
        if not 2 <= audit_folds <= len(dataset.labels):
            raise SettingError(f"folds must be between 2 and the number of products ({len(dataset.labels)}); got {audit_folds}")
        record |= {"kind": "audit", "folds": audit_folds}
        name = name or "audit"
    run_dir = runs.RunStore(runs_dir()).create(record, name=name).path
    launch_background(run_dir, cwd=ROOT)
    st.session_state["selected_run"] = run_dir.name
    return run_dir


def demo_run_offer(key: str) -> None:
    """What a page shows instead of being empty when it needs a run and there is none."""
    st.info("There are no finished training runs yet. A demo run trains a small categorizer on the sample catalog "
            f"({default('targets')} label smoothing, {SAMPLE_EPOCHS} epochs): about 2 to 3 minutes on two idle CPU cores, "
            "most of it embedding "
            "the products; longer on a busy machine. The Training page shows its progress.")
    if st.button("Start a demo run on the sample catalog", type="primary", key=key):
        run_dir = launch(sample_config(), name="demo")
        st.success(f"Demo run {run_dir.name} started. Follow it on the Training page; this page fills in when it is done.")


def finished_runs() -> list[runs.Run]:
    """Healthy finished runs, newest first (damaged ones are listed by `damaged_runs_notice`)."""
    return runs.RunStore(runs_dir()).finished()


def damaged_runs_notice() -> None:
    """Name the runs whose files are damaged, so they are not silently missing from the lists."""
    damaged = [p for r in runs.RunStore(runs_dir()).runs() for p in r.problems()]
    if damaged:
        st.warning(f"{len(damaged)} run file problem(s); those runs are left out:", icon=":material/warning:")
        st.text("\n".join(damaged))


def metric_help(columns: object, **config: object) -> dict:
    """Column configs giving each metric column its glossary tooltip (core/evaluation/registry.py);
    `config` adds or overrides a column's own config."""
    helped = {c: st.column_config.Column(help=explain(str(c))) for c in columns if explain(str(c))}
    return helped | config


def glossary_expander() -> None:
    """The one glossary of the metrics: name, which direction is better and what the number means."""
    with st.expander("What the metrics mean"):
        st.table(pd.DataFrame(glossary()).set_index("metric"))  # a static table wraps the long meanings
