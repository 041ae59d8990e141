"""The run store: runs on disk, their status, progress and comparison tables."""
