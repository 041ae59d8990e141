import json

import numpy as np
import pytest

from core.taxonomy.formats import detect_format, load_taxonomy, taxonomy_from_labels
from core.taxonomy.tree import TaxonomyError
from tests.conftest import SAMPLE_TAXONOMY, shared_file


def idx(tax, path):
    return tax.resolve(path)


def test_structure_of_hand_worked_tree(small_tree):
    t = small_tree
    assert len(t) == 8
    assert sorted(t.names[r] for r in t.roots) == ["A", "B"]
    assert sorted(t.names[i] for i in t.leaves) == ["a", "b", "c", "d"]
    a = idx(t, "A > A1 > a")
    assert t.depth[a] == 3
    assert t.path(a) == ["A", "A1", "a"]
    assert [t.names[x] for x in t.ancestors(a)] == ["A", "A1"]
    assert sorted(t.names[c] for c in t.children(idx(t, "A"))) == ["A1", "A2"]


def test_lca_distance_matches_method_definition(small_tree):
    t = small_tree
    a, b, c, d = (idx(t, p) for p in ("A > A1 > a", "A > A1 > b", "A > A2 > c", "B > d"))
    A1 = idx(t, "A > A1")
    # d = max(depth) - depth(lca)
    assert list(t.distance([a, a, a, a, d, A1], [a, b, c, d, d, a])) == [0, 1, 2, 3, 0, 1]
    assert list(t.distance([a, a], [c, d], metric="path")) == [4, 5]
    assert list(t.lca_depth([a, a, a], [b, c, d])) == [2, 1, 0]


def test_distance_matrix_over_class_subset_agrees_with_pairwise(small_tree):
    t = small_tree
    leaves = t.leaves
    m = t.distance_matrix(leaves, block=2)
    i, j = np.meshgrid(np.arange(len(leaves)), np.arange(len(leaves)), indexing="ij")
    assert (m == t.distance(i.ravel(), j.ravel(), classes=leaves).reshape(m.shape)).all()
    assert (m == m.T).all() and (np.diag(m) == 0).all()


@pytest.mark.parametrize("sep", [" > ", " >> ", " / "])
def test_path_separators_detected(sep):
    t = load_taxonomy(f"Shoes{sep}Boots\nShoes{sep}Sandals\n".encode())
    assert len(t) == 3 and t.max_depth == 2
    assert [p.code for p in t.problems] == ["created-ancestor"]  # "Shoes" has no line of its own


def test_mixed_separators_and_created_ancestors_are_reported():
    t = load_taxonomy(b"Shoes > Boots > Rain Boots\nShoes > Sandals\nShoes / Slippers\n")
    codes = {p.code for p in t.problems}
    assert "mixed-separators" in codes and "created-ancestor" in codes
    assert any(p.where == "line 3" for p in t.problems if p.code == "mixed-separators")
    assert t.resolve("Shoes > Slippers") is not None


def test_csv_with_path_column_and_tsv_id_parent(tmp_path):
    (tmp_path / "p.csv").write_text("id,path\n10,Home > Kitchen\n11,Home > Garden\n")
    t = load_taxonomy(tmp_path / "p.csv")
    assert t.source_format == "csv" and "10" in t.index and t.path_str(t.index["11"]) == "Home > Garden"
    (tmp_path / "t.tsv").write_text("id\tparent_id\tname\n1\t\tHome\n2\t1\tKitchen\n3\t2\tKnives\n")
    t = load_taxonomy(tmp_path / "t.tsv")
    assert t.source_format == "idparent" and t.path_str(t.index["3"]) == "Home > Kitchen > Knives"


def test_nested_json(tmp_path):
    tree = {"name": "Home", "children": [{"name": "Kitchen", "children": [{"name": "Knives"}]}, {"name": "Garden"}]}
    (tmp_path / "t.json").write_text(json.dumps([tree]))
    t = load_taxonomy(tmp_path / "t.json")
    assert t.source_format == "json" and t.max_depth == 3 and len(t.leaves) == 2


def test_fatal_problems_are_listed_together(tmp_path):
    (tmp_path / "bad.csv").write_text("id,parent_id,name\n1,3,A\n2,1,B\n3,2,C\n4,,D\n4,1,D\n")
    with pytest.raises(TaxonomyError) as err:
        load_taxonomy(tmp_path / "bad.csv")
    codes = {p.code for p in err.value.problems}
    assert codes == {"cycle", "two-parents"}
    assert "line" in str(err.value)


def test_warnings_load(tmp_path):
    (tmp_path / "w.csv").write_text("id,parent_id,name\n1,,A\n2,99,B\n3,1,\n1,,A\n")
    t = load_taxonomy(tmp_path / "w.csv")
    assert {p.code for p in t.problems} == {"unknown-parent", "empty-name", "duplicate-id"}
    assert t.parent[t.index["2"]] == -1 and t.names[t.index["3"]] == "3"


def test_binary_and_empty_files_are_refused(tmp_path):
    with pytest.raises(TaxonomyError, match="binary"):
        load_taxonomy(b"\x89PNG\r\n\x1a\n\x00\x00")
    with pytest.raises(TaxonomyError, match="no categories"):
        load_taxonomy(b"# only a comment\n\n")
    with pytest.raises(TaxonomyError, match="not found"):
        load_taxonomy(tmp_path / "missing.txt")
    with pytest.raises(TaxonomyError, match="JSON"):
        load_taxonomy(b'[{"name": ')


def test_taxonomy_from_product_labels():
    t = taxonomy_from_labels(["Shoes >> Boots", "Shoes >> Sandals", "Bags >> Totes", "Shoes >> Boots"])
    assert len(t.leaves) == 3 and len(t.roots) == 2 and not t.problems


def test_sample_taxonomy_shape():
    t = load_taxonomy(SAMPLE_TAXONOMY)
    assert 60 <= len(t.leaves) <= 150 and t.max_depth in (3, 4) and len(t.roots) >= 4


def test_google_taxonomy():
    t = load_taxonomy(shared_file("taxonomies/google-product-taxonomy-with-ids.en-US.txt"))
    s = t.summary()
    assert (s["nodes"], s["roots"], s["max_depth"]) == (5595, 21, 7)
    assert t.path_str(t.index["3237"]) == "Animals & Pet Supplies > Live Animals"
    assert detect_format("1 - A\n2 - A > B\n") == "google"


def test_bestbuy_loads_with_problems_listed():
    t = load_taxonomy(shared_file("taxonomies/bestbuy-categories.json"))
    created = [p for p in t.problems if p.code == "created-ancestor"]
    assert len(created) == 139
    assert len(t) == 4584 + 139 and len(t.roots) >= 43
    assert {p.code for p in t.problems} >= {"unknown-child", "child-mismatch"}


@pytest.mark.parametrize(("text", "words"), [
    (b"id,parent_id,name\n", "no categories below it"),
    (b"path\n", "no categories below it"),
    (b'"hello"\n', "single JSON value"),
    (b"null", "single JSON value"),
])
def test_header_only_tables_and_json_scalars_are_refused(text, words):
    with pytest.raises(TaxonomyError, match=words):
        load_taxonomy(text, filename="t.csv")


def test_a_json_scalar_still_loads_as_a_path_list_when_asked():
    assert load_taxonomy(b"null", format="paths").names == ["null"]


def _nested(depth: int) -> bytes:
    return ("".join(f'{{"name": "n{i}", "children": [' for i in range(depth)) + '{"name": "leaf"}' + "]}" * depth).encode()


def test_deep_nested_json_is_refused_with_a_message_not_a_recursion_error():
    with pytest.raises(TaxonomyError, match="nested too deeply"):
        load_taxonomy(_nested(600))  # json's own parser gives up here
    with pytest.raises(TaxonomyError, match="301 levels deep"):
        load_taxonomy(_nested(300))  # parses, but distances are stored in 8 bits
    assert load_taxonomy(_nested(200)).max_depth == 201  # walked without recursion


def test_flat_taxonomy_loads():
    t = load_taxonomy(b"Shoes\nBags\nHats\n")
    assert (len(t), len(t.leaves), t.max_depth) == (3, 3, 1)


def test_search_matches_names_and_typed_paths_as_its_docstring_says(small_tree):
    def names(hits: list[int]) -> list[str]:
        return [small_tree.path_str(i) for i in hits]

    assert names(small_tree.search("A1")) == ["A > A1"]  # a name: only the node named so, not its descendants
    assert names(small_tree.search("a > a1 >")) == ["A > A1 > a", "A > A1 > b"]  # a path, case-insensitive
    assert names(small_tree.search("A >> A1 >> B")) == ["A > A1 > b"]  # any supported separator
    assert names(small_tree.search("a > a2")) == ["A > A2", "A > A2 > c"]  # shallowest first
    assert small_tree.search("A > Z") == [] and small_tree.search("  ") == []


def test_split_path_and_top_level():
    from core.taxonomy.tree import split_path, top_level

    assert split_path(" Shoes >> Boots ") == ["Shoes", "Boots"] and split_path("Home / Garden") == ["Home", "Garden"]
    assert split_path("  Boots ") == ["Boots"]
    assert top_level("Shoes > Boots > Rain") == "Shoes" and top_level("Home / Garden") == "Home / Garden"


def test_a_product_table_is_not_read_as_paths_and_names_its_columns():
    """id,title,brand was once a paths taxonomy with a top-level branch per line, one named 'id,title,brand'."""
    from core.taxonomy.formats import TableNotTaxonomy, paths_from_table

    table = b"id,title,brand,type\n1,Rain boots,Acme,Shoes > Boots\n2,Sandal,Acme,Shoes > Sandals\n3,Tote,Bee,Bags\n"
    with pytest.raises(TableNotTaxonomy) as err:
        load_taxonomy(table, filename="products.csv")
    assert err.value.columns == ["id", "title", "brand", "type"] and "choose the column" in str(err.value)
    tax = load_taxonomy(paths_from_table(table, "type"), format="paths")
    assert sorted(tax.path_str(r) for r in tax.roots) == ["Bags", "Shoes"] and len(tax.leaves) == 3
    assert detect_format("Shoes > Boots, wellies\nShoes > Sandals, flip-flops\n") == "paths"  # commas in names stay paths
