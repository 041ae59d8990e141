"""fastText in its own process: its bindings need numpy<2, so bench/baselines.py runs this file with the
interpreter of the venv it creates (bench/.venv-fasttext) and talks to it through plain files only.

    python bench/fasttext_worker.py TRAIN.txt TEST.txt OUT.jsonl PARAMS_JSON

TRAIN.txt holds `__label__<class> <text>` lines, TEST.txt one text a line; OUT.jsonl gets one line per test
text, {"labels": [...], "probs": [...]} (the top k), and the last stdout line is a JSON object with the
training seconds and the seconds of the timed predict (model already in memory: start-up excluded)."""

from __future__ import annotations

import json
import sys
import time

import fasttext


def main() -> None:
    train_path, test_path, out_path, params_json = sys.argv[1:5]
    params = json.loads(params_json)
    k = params.pop("k")
    started = time.perf_counter()
    model = fasttext.train_supervised(input=train_path, verbose=0, **params)
    train_seconds = time.perf_counter() - started
    with open(test_path, encoding="utf-8") as handle:
        texts = handle.read().split("\n")[:-1]
    started = time.perf_counter()
    labels, probs = model.predict(texts, k=k)
    predict_seconds = time.perf_counter() - started
    with open(out_path, "w", encoding="utf-8") as out:
        for row_labels, row_probs in zip(labels, probs, strict=True):
            out.write(json.dumps({"labels": [label.removeprefix("__label__") for label in row_labels],
                                  "probs": [float(p) for p in row_probs]}) + "\n")
    print(json.dumps({"train_seconds": train_seconds, "predict_seconds": predict_seconds, "n_labels": len(model.labels)}))


if __name__ == "__main__":
    main()
