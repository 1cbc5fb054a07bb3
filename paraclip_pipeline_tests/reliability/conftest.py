"""The lead's end-to-end ``pipeline`` fixture (two tiny shards, tmp storage and instance)."""

from paraclip_pipeline_tests.defs.conftest import pipeline  # noqa: F401 (fixture re-export)
