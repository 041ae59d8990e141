"""Column guesses for an uploaded product table: only what fits the role by its values."""

import pandas as pd

from core.columns import guess_columns
from core.data import read_table
from core.taxonomy import load_taxonomy
from tests.conftest import SAMPLE_PRODUCTS, SAMPLE_TAXONOMY, shared_file


def test_sku_colour_price_guesses_no_label_and_no_text():
    frame = pd.DataFrame({"sku": ["1", "2", "3", "4"], "colour": ["red", "blue", "red", "green"], "price": ["9.5", "3", "4", "5"]})
    assert guess_columns(frame) == {"label": [], "text": [], "id": "sku"}


def test_sample_catalog_is_guessed_by_values():
    frame = read_table(SAMPLE_PRODUCTS, nrows=200)
    assert guess_columns(frame) == {"label": ["category_path"], "text": ["title", "description"], "id": "id"}


def test_path_values_win_over_a_misleading_name_and_ids_must_be_unique():
    frame = pd.DataFrame({"id": ["a", "a", "b"], "label": ["1", "2", "3"], "cat": ["Shoes > Boots", "Bags > Totes", "Shoes > Boots"],
                          "blurb": ["a long waterproof boot", "a big canvas tote bag", "another boot, in leather"]})
    assert guess_columns(frame) == {"label": ["cat"], "text": ["blurb"], "id": None}


def test_taxonomy_ids_count_as_labels_when_the_taxonomy_resolves_them():
    tax = load_taxonomy(b"id,parent_id,name\n10,,Shoes\n11,10,Boots\n12,10,Sandals\n")
    frame = pd.DataFrame({"sku": ["x1", "x2", "x3"], "cat_id": ["11", "12", "11"], "title": ["rubber rain boot, kids", "leather sandal, men", "snow boot"]})
    assert guess_columns(frame, known=lambda v: tax.resolve(v) is not None)["label"] == ["cat_id"]
    assert guess_columns(frame)["label"] == []  # without the taxonomy, plain numbers are not a label


def test_flipkart_json_list_paths_and_fashion_attributes():
    flipkart = read_table(shared_file("flipkart/flipkart_com-ecommerce_sample.csv"), nrows=200,
                          column_names=["uniq_id", "product_name", "product_category_tree"])
    guess = guess_columns(flipkart)
    assert guess["label"] == ["product_category_tree"] and guess["id"] == "uniq_id" and "product_name" in guess["text"]
    styles = read_table(shared_file("fashion-small/styles.csv"), nrows=200)
    assert guess_columns(styles) == {"label": [], "text": ["productDisplayName"], "id": "id"}


def test_sample_taxonomy_resolves_the_sample_labels():
    tax = load_taxonomy(SAMPLE_TAXONOMY.read_bytes())
    frame = read_table(SAMPLE_PRODUCTS, nrows=50)
    assert guess_columns(frame, known=lambda v: tax.resolve(v) is not None)["label"] == ["category_path"]
