"""Category prompts that keep distinct categories distinct: the default template never gives two classes
one label embedding because they share a leaf name, and the Similarity page says when names collide."""

import numpy as np
import pytest

from core.data.encoders import (
    colliding_prompts,
    collision_note,
    label_embeddings,
    render_prompts,
    repeated_names,
)
from core.settings import ExperimentConfig
from core.taxonomy.formats import load_taxonomy
from tests.conftest import app_page

SHOP = b"Baby > Toys\nPets > Toys\nPets > Food\nGarden > X > Toys\nHome > X > Toys\nHome > x > Food\nHome > Lamps\n"


@pytest.fixture(scope="module")
def shop():
    tax = load_taxonomy(SHOP)
    classes = np.array(sorted(tax.leaves, key=tax.path_str))
    return tax, classes


def test_distinct_adds_ancestors_only_where_a_leaf_name_repeats(shop):
    tax, classes = shop
    prompts = dict(zip(map(tax.path_str, classes), render_prompts(tax, classes, "distinct"), strict=True))
    assert prompts == {"Baby > Toys": "Baby > Toys", "Pets > Toys": "Pets > Toys", "Pets > Food": "Pets > Food",
                       "Garden > X > Toys": "Garden > X > Toys", "Home > X > Toys": "Home > X > Toys",
                       "Home > x > Food": "x > Food", "Home > Lamps": "Lamps"}
    assert colliding_prompts(render_prompts(tax, classes, "name")) == 6  # four Toys, two Food
    assert colliding_prompts(prompts.values()) == 0
    assert list(repeated_names(tax, classes)) == ["Toys", "Food"]


def test_repeated_leaf_names_get_distinct_label_embeddings_under_the_default_template(shop, minilm):
    tax, classes = shop
    default = ExperimentConfig().template
    emb = label_embeddings(tax, classes, minilm, default)
    sims = emb @ emb.T
    np.fill_diagonal(sims, -1)
    assert sims.max() < 0.99  # no two categories share a vector
    same = label_embeddings(tax, classes, minilm, "name") @ label_embeddings(tax, classes, minilm, "name").T
    toys = [i for i, c in enumerate(classes) if tax.names[int(c)] == "Toys"]
    assert same[toys[0], toys[1]] == pytest.approx(1.0, abs=1e-5)  # what the old default did


def test_collision_note_warns_for_name_and_reassures_for_distinct(shop):
    tax, classes = shop
    level, text = collision_note(tax, classes, "name")
    assert level == "warning" and "6 categories share their prompt" in text and "'Toys' is the name of 4" in text
    assert collision_note(tax, classes, "distinct")[0] == "info"
    flat = load_taxonomy(b"A > a\nB > b\n")
    assert collision_note(flat, flat.leaves, "name") is None


def test_similarity_page_says_when_leaf_names_collide():
    at = app_page("similarity")
    assert not at.warning  # the sample taxonomy repeats no leaf name
    at.session_state["taxonomy_source"] = {"bytes": SHOP, "format": None, "name": "shop.txt"}
    at.session_state["template"] = "name"
    at.run()
    assert not at.exception
    assert any("share their prompt" in w.value for w in at.warning)
    assert at.table[0].value["name"].tolist() == ["Toys", "Food"]
