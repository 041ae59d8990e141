"""Taxonomies: the tree and its maths (depths, LCA, distances), the file formats, the drawing plan."""
