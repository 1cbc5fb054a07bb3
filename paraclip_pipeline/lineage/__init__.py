"""Checkpoint manifests and the lineage query from a checkpoint back to source captions."""
