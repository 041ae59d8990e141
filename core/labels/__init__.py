"""Label representations: soft targets of every kind, label-embedding similarity, feature codes."""
