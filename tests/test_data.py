import json

import numpy as np
import pandas as pd
import pytest

from core.data.features import build_features
from core.data.tables import (
    DataError,
    compose_texts,
    count_rows,
    join_texts,
    normalise_label,
    prepare_dataset,
    read_table,
    stratified_split,
)
from core.taxonomy.formats import load_taxonomy
from tests.conftest import SAMPLE_PRODUCTS, SAMPLE_TAXONOMY, shared_file

FRAME = pd.DataFrame({
    "sku": ["1", "2", "3", "3", "4", "5", "6"],
    "title": ["Rain boots", "", "Chef knife", "dup", "Mystery", "Sandal", "Slides"],
    "path": ["Shoes > Boots", "Shoes > Boots", "Kitchen > Knives", "Kitchen > Knives", "Toys > Robots", "Shoes > Sandals", ""],
})


@pytest.fixture()
def tax():
    return load_taxonomy(b"Shoes > Boots\nShoes > Sandals\nKitchen > Knives\n")


def test_every_drop_is_reported_with_its_reason(tax):
    ds = prepare_dataset(FRAME, label_columns=["path"], text_columns=["title"], id_column="sku", taxonomy=tax)
    assert ds.report.dropped == {"empty label": 1, "empty text": 1, "duplicate id": 1, "label not in the taxonomy": 1}
    assert ds.ids.tolist() == ["1", "3", "5"] and ds.report.kept == 3
    assert ds.class_names == [ds.taxonomy.path_str(int(c)) for c in ds.classes]
    assert [ds.class_names[i] for i in ds.labels] == ["Shoes > Boots", "Kitchen > Knives", "Shoes > Sandals"]


def test_labels_from_several_columns_and_by_id():
    frame = pd.DataFrame({"t": ["a", "b"], "l1": ["Shoes", "Shoes"], "l2": ["Boots", "Sandals"]})
    ds = prepare_dataset(frame, label_columns=["l1", "l2"], text_columns=["t"])
    assert sorted(ds.class_names) == ["Shoes > Boots", "Shoes > Sandals"]
    google = load_taxonomy(b"1 - Shoes\n2 - Shoes > Boots\n")
    ds = prepare_dataset(pd.DataFrame({"t": ["x"], "cat": ["2"]}), label_columns=["cat"], text_columns=["t"], taxonomy=google)
    assert ds.class_names == ["Shoes > Boots"]


def test_missing_columns_and_image_folder_are_clear(tmp_path):
    with pytest.raises(DataError, match="label column 'nope' is not in the data; available columns: sku, title, path"):
        prepare_dataset(FRAME, label_columns=["nope"], text_columns=["title"])
    with pytest.raises(DataError, match="image folder not found"):
        prepare_dataset(FRAME, label_columns=["path"], text_columns=["title"], image_column="sku", image_dir=tmp_path / "none")


def test_flipkart_style_labels():
    raw = json.dumps(["Pet Supplies >> Grooming >> Shampoo >> Sicons Arnica Dog Shampoo (500 ml)"])
    assert normalise_label(raw, "Sicons Arnica Dog Shampoo") == (["Pet Supplies", "Grooming", "Shampoo"], True)
    assert normalise_label("Beauty > Skincare > Sunscreen", "Sunscreen SPF 50") == (["Beauty", "Skincare", "Sunscreen"], False)


def test_table_formats_round_trip(tmp_path):
    FRAME.to_csv(tmp_path / "p.csv", index=False)
    FRAME.to_csv(tmp_path / "p.tsv", index=False, sep="\t")
    FRAME.to_parquet(tmp_path / "p.parquet")
    FRAME.to_json(tmp_path / "p.jsonl", orient="records", lines=True)
    for name in ("p.csv", "p.tsv", "p.parquet", "p.jsonl"):
        assert read_table(tmp_path / name)["title"].tolist() == FRAME.title.tolist(), name
    (tmp_path / "h.csv").write_text("1,Boots,Shoes > Boots\n")
    assert read_table(tmp_path / "h.csv", column_names=["sku", "title", "path"]).loc[0, "title"] == "Boots"


def test_bad_tables(tmp_path):
    (tmp_path / "blob.csv").write_bytes(b"\xff\xfe\x00\x00" * 100)
    (tmp_path / "ragged.csv").write_text('a,b\n1,2\n3,4,5,6\n')
    (tmp_path / "x.xlsx").write_text("x")
    for name, word in (("blob.csv", "UTF-8"), ("ragged.csv", "could not be read"), ("x.xlsx", "unsupported"), ("none.csv", "not found")):
        with pytest.raises(DataError, match=word):
            read_table(tmp_path / name)


def test_split_keeps_small_classes_in_training_and_is_seeded():
    labels = np.array([0] * 30 + [1] * 30 + [2] * 2 + [3] * 1)
    s = stratified_split(labels, 0.1, 0.2, seed=3)
    assert sorted(np.concatenate([s.train, s.val, s.test]).tolist()) == list(range(len(labels)))
    assert s.train_only_classes.tolist() == [2, 3]
    assert set(labels[s.val]) == {0, 1} and set(labels[s.test]) == {0, 1}
    again = stratified_split(labels, 0.1, 0.2, seed=3)
    assert np.array_equal(s.test, again.test)


def test_features_join_precomputed_with_mask(tmp_path, tax):
    ds = prepare_dataset(FRAME, label_columns=["path"], text_columns=["title"], id_column="sku", taxonomy=tax)
    np.save(tmp_path / "e.npy", np.eye(3, 4, dtype=np.float32))
    (tmp_path / "ids.csv").write_text("id\n5\n1\n99\n")

    class Fixed:
        identity, dim, cacheable, supports_images, semantic = "fixed", 2, False, False, True

        def encode_text(self, texts, batch_size=128, progress=None):
            return np.ones((len(texts), 2), dtype=np.float32)

    f = build_features(ds, Fixed(), precomputed=(str(tmp_path / "e.npy"), str(tmp_path / "ids.csv")))
    assert f.slices == [("text", 0, 2), ("image", 2, 6)]
    assert f.mask[:, 1].tolist() == [True, False, True]  # ids 1, 3, 5: 3 has no embedding
    assert f.matrix[0, 2:].tolist() == [0, 1, 0, 0] and not f.matrix[1, 2:].any()


def test_sample_catalog_matches_its_taxonomy():
    frame = read_table(SAMPLE_PRODUCTS)
    ds = prepare_dataset(frame, label_columns=["category_path"], text_columns=["title", "description"], id_column="id",
                         taxonomy=load_taxonomy(SAMPLE_TAXONOMY))
    assert 3000 <= len(ds.ids) <= 8000 and not ds.report.dropped and len(ds.classes) == 104


def test_real_flipkart_loads():
    frame = read_table(shared_file("flipkart/flipkart_com-ecommerce_sample.csv"),
                       column_names=["uniq_id", "product_name", "product_category_tree"])
    ds = prepare_dataset(frame, label_columns=["product_category_tree"], text_columns=["product_name"], id_column="uniq_id", max_depth=3)
    assert len(frame) == 20000 and ds.report.kept > 19000
    assert any("own name" in n for n in ds.report.notes)
    assert all(len(ds.taxonomy.path(int(c))) <= 3 for c in ds.classes)


def test_real_fashion_loads_with_images_and_embeddings():
    root = shared_file("fashion-small")
    frame = read_table(root / "styles.csv")
    ds = prepare_dataset(frame, label_columns=["masterCategory", "subCategory", "articleType"], text_columns=["productDisplayName"],
                         id_column="id", image_column="id", image_dir=root / "images", image_pattern="{}.jpg")
    assert len(ds.classes) == 101 and ds.image_paths[0].endswith(".jpg")
    assert len(ds.ids) == 1999 and ds.report.dropped == {"empty text": 1}  # one product has no name


@pytest.mark.parametrize(("label", "title", "kept"), [
    ("Shoes > Sandals", "Sandal", 2),  # a prefix inside a word is not the product's name
    ("Shoes > Boots", "Boots", 2),  # a short exact match may be the category itself
    ("Clothing > Shorts > Alisha Solid Women's Cycling Shorts", "Alisha Solid Women's Cycling Shorts", 2),
    ("Furniture > Sofa Beds > FabHomeDecor Fabric Double Sofa Bed (Finish Colo...", "FabHomeDecor Fabric Double Sofa Bed", 2),
])
def test_name_tail_rules(label, title, kept):
    assert len(normalise_label(label, title)[0]) == kept


def test_parquet_list_labels_are_paths_and_structs_are_refused(tmp_path):
    frame = pd.DataFrame({"id": ["1", "2", "3"], "title": ["Rain boots", "Chef knife", "Sandal"],
                          "segments": [["Shoes", "Boots"], ["Kitchen", "Knives"], ["Shoes", "Sandals"]],
                          "text": [{"en": "Rain boots"}, {"en": "Chef knife"}, {"en": "Sandal"}]})
    frame.to_parquet(tmp_path / "t.parquet")
    table = read_table(tmp_path / "t.parquet")
    ds = prepare_dataset(table, label_columns=["segments"], text_columns=["title"], id_column="id")
    assert ds.class_names == ["Kitchen > Knives", "Shoes > Boots", "Shoes > Sandals"]
    with pytest.raises(DataError, match=r"text column 'text' holds structs .*row 1"):
        prepare_dataset(table, label_columns=["segments"], text_columns=["text"])
    with pytest.raises(DataError, match="label column 'text' holds structs"):
        prepare_dataset(table, label_columns=["text"], text_columns=["title"])
    with pytest.raises(DataError, match="label column 'segments' holds lists"):  # several label columns: one level each
        prepare_dataset(table, label_columns=["segments", "title"], text_columns=["title"])


def test_precomputed_files_that_cannot_be_joined_are_refused(tmp_path, tax):
    from core.data.features import precomputed_block

    (tmp_path / "ids.txt").write_text("5\n1\n99\n")  # one id per line, no header
    np.save(tmp_path / "e.npy", np.eye(3, 4, dtype=np.float32))
    block, found = precomputed_block(["1", "2", "5"], tmp_path / "e.npy", tmp_path / "ids.txt")
    assert found.tolist() == [True, False, True] and block[2].tolist() == [1, 0, 0, 0]
    with pytest.raises(DataError, match="none of the product ids"):
        precomputed_block(["7", "8"], tmp_path / "e.npy", tmp_path / "ids.txt")


def test_one_text_per_product_from_its_fields(tmp_path):
    """The one composition training, prediction, import and the Categorize page's typed product use."""
    assert join_texts(["  Rain boots ", "", " waterproof"]) == "Rain boots . waterproof"
    assert join_texts(["", "  "]) == ""
    frame = pd.DataFrame({"t": ["Boots", "", None], "d": ["warm", "Chef knife", ""]}, index=[7, 8, 9])
    assert compose_texts(frame, ["t", "d"]).tolist() == ["Boots . warm", "Chef knife", ""]


def test_count_rows_reads_in_chunks_with_read_tables_messages(tmp_path):
    FRAME.to_csv(tmp_path / "p.csv", index=False)
    FRAME.to_parquet(tmp_path / "p.parquet")
    assert count_rows(tmp_path / "p.csv") == count_rows(tmp_path / "p.parquet") == len(FRAME) == 7
    (tmp_path / "empty.csv").write_text("id,title\n")
    with pytest.raises(DataError, match="empty.csv holds no rows"):
        count_rows(tmp_path / "empty.csv")


def test_holdout_halves_are_disjoint_cover_the_items_and_repeat_with_the_seed():
    from core.data.tables import holdout_halves

    idx = np.array([3, 8, 9, 12, 20, 31, 40])
    first, second = holdout_halves(idx, seed=1)
    assert len(first) == 3 and len(second) == 4 and not set(first) & set(second)
    assert sorted([*first, *second]) == idx.tolist()
    assert [a.tolist() for a in holdout_halves(idx, seed=1)] == [first.tolist(), second.tolist()]
    one = np.array([5])
    assert [a.tolist() for a in holdout_halves(one)] == [[5], [5]]  # too few to halve: both are all of them


def test_labels_of_another_taxonomy_are_refused_with_distinct_examples_and_a_way_out(tax):
    """Every label misses the given taxonomy: the error names different labels (not one three times)
    and says how to train without the taxonomy."""
    frame = pd.DataFrame({"title": ["a", "b", "c", "d"], "path": ["Toys > Robots"] * 3 + ["Garden > Hoses"]})
    with pytest.raises(DataError) as err:
        prepare_dataset(frame, label_columns=["path"], text_columns=["title"], taxonomy=tax)
    message = str(err.value)
    assert "dropped 4: label not in the taxonomy (e.g. Toys > Robots, Garden > Hoses)" in message
    assert "its top level: Shoes, Kitchen" in message
    assert "untick 'Check the labels against the taxonomy'" in message and "leave out --taxonomy" in message
