"""Batch embedding and scoring as Ray Data pipelines, on a real Ray head node (loopback, token
authentication): the same files as the one-process path, with the actors never starving the reader."""

import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from tests.conftest import SAMPLE_PRODUCTS
from tests.test_cli_taxonomy import run_cli


def summary(result) -> dict:
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_embed_and_predict_on_a_ray_head_node_write_what_one_process_writes(tree_run, ray_head, tmp_path):
    data = tmp_path / "new.csv"
    products = pd.read_csv(SAMPLE_PRODUCTS, dtype=str, keep_default_na=False)
    products.iloc[1500:1560][["id", "title"]].to_csv(data, index=False)  # 60 products the run never saw
    columns = ["--data", data, "--text-column", "title", "--id-column", "id", "--json", "--quiet"]
    # the head has 2 CPUs: of the 4 actors asked for, 1 fits beside Ray Data's read task (4 would wait forever)
    on_ray = ["--ray-address", ray_head["address"], "--workers", "4", "--chunk-rows", "20"]
    ray_env = ray_head["env"] | {"TAXOLENS_CACHE": str(tmp_path / "cache-ray")}  # empty caches: both really embed
    one_env = ray_head["env"] | {"TAXOLENS_CACHE": str(tmp_path / "cache-one")}

    ray_embed = summary(run_cli("embed", *columns, "--encoder", "minilm", "--out", tmp_path / "f-ray", *on_ray, env=ray_env))
    one_embed = summary(run_cli("embed", *columns, "--encoder", "minilm", "--out", tmp_path / "f-one", env=one_env))
    assert (ray_embed["engine"], ray_embed["workers"], one_embed["engine"]) == ("ray-cluster", 1, "one-process")
    assert ray_embed["rows"] == one_embed["rows"] == 60
    assert ray_embed["embedded"] == one_embed["embedded"] > 50 and ray_embed["cached"] == one_embed["cached"]
    assert pd.read_parquet(tmp_path / "f-ray" / "ids.parquet").equals(pd.read_parquet(tmp_path / "f-one" / "ids.parquet"))
    np.testing.assert_allclose(np.load(tmp_path / "f-ray" / "features.npy"), np.load(tmp_path / "f-one" / "features.npy"),
                               atol=1e-5)

    ray_out, one_out = tmp_path / "ray.parquet", tmp_path / "one.parquet"
    ray_pred = summary(run_cli("predict", tree_run["run_dir"], *columns, "--out", ray_out, *on_ray, env=ray_env))
    one_pred = summary(run_cli("predict", tree_run["run_dir"], *columns, "--out", one_out, env=one_env))
    assert (ray_pred["engine"], ray_pred["address"], ray_pred["workers"]) == ("ray-cluster", ray_head["address"], 1)
    assert ray_pred["rows"] == one_pred["rows"] == 60 and ray_pred["review"] == one_pred["review"]
    assert pq.read_schema(ray_out).remove_metadata().equals(pq.read_schema(one_out).remove_metadata())
    scored = pd.read_parquet(ray_out)
    assert scored["id"].tolist() == products["id"].iloc[1500:1560].tolist()  # three batches, in the table's order
    pd.testing.assert_frame_equal(scored, pd.read_parquet(one_out), check_exact=False, atol=1e-6)


def test_actors_leave_a_cpu_for_the_reader_and_a_one_cpu_cluster_is_refused(monkeypatch):
    """Actors holding every CPU starve Ray Data's read tasks, and the job then waits forever without a word."""
    import ray

    from core.scale import cluster

    assert cluster.pipeline_cpus(2) == 3 and cluster.pipeline_cpus(0) == 2  # a local Ray: the actors plus one
    for cpus, asked, fits in ((8, 4, 4), (3, 4, 2), (2, 1, 1)):
        monkeypatch.setattr(ray, "cluster_resources", lambda cpus=cpus: {"CPU": float(cpus)})
        assert cluster.actors_that_fit(asked) == fits
    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 1.0})
    with pytest.raises(cluster.ClusterError, match="has 1 CPU"):
        cluster.actors_that_fit(2)
