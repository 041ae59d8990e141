"""Product data: tables, splits, encoders, the per-item embedding cache, features folders, images, exports."""
