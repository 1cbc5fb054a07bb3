"""Training data preparation: one row per normalised caption across shards, on disk."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from paraclip_pipeline import schema
from paraclip_pipeline.storage import write_parquet_atomic
from paraclip_pipeline.training.data import TrainingDataError, epoch_order, window_orders
from paraclip_pipeline.training.prepare import prepare_training_data
from paraclip_pipeline_tests.training.reference import in_memory_fingerprint, in_memory_rows
from paraclip_pipeline_tests.training.support import make_embeddings, make_pairs


def _with_text(pairs: pa.Table, updates: dict[str, tuple[str, str]]) -> pa.Table:
    """``pairs`` with rows (by caption_id) given a new shard and caption text."""
    rows = pairs.to_pylist()
    for row in rows:
        if row[schema.CAPTION_ID] in updates:
            row[schema.SHARD], row[schema.TEXT] = updates[row[schema.CAPTION_ID]]
    return pa.Table.from_pylist(rows, schema=pairs.schema)


def test_the_same_caption_in_two_shards_is_trained_on_once(tmp_path: Path) -> None:
    pairs = _with_text(
        make_pairs(10),
        {
            "c002": ("shard-b", "A red boat, on the river."),
            "c007": ("shard-a", "a red boat on the river"),
            "c004": ("shard-c", "A RED BOAT ON THE RIVER!"),
            "c005": ("shard-b", "two dogs"),
            "c009": ("shard-a", "Two  dogs."),
        },
    )
    # Shards arrive in any order, in several files: the kept row must not depend on it.
    shuffled = pairs.take([9, 3, 7, 0, 5, 2, 8, 4, 1, 6, 10, 11])
    files = [
        write_parquet_atomic(shuffled.slice(0, 5), tmp_path / "a.parquet"),
        write_parquet_atomic(shuffled.slice(5), tmp_path / "b.parquet"),
    ]
    embeddings = write_parquet_atomic(make_embeddings(pairs, "m", 8), tmp_path / "e.parquet")
    data = prepare_training_data(files, [embeddings], tmp_path / "prepared")
    ids = pl.read_parquet(data.train_path)[schema.CAPTION_ID].to_list()
    assert data.duplicate_captions_dropped == 3
    assert "c002" in ids and "c005" in ids
    assert not {"c004", "c007", "c009"} & set(ids)
    assert ids == sorted(ids) and len(data) == 7
    rows = pl.read_parquet(data.train_path)
    assert rows.filter(pl.col(schema.CAPTION_ID) == "c002")[schema.TEXT][0] == (
        "A red boat, on the river."
    )


def test_prepared_data_equals_the_in_memory_rows(tmp_path: Path) -> None:
    """Same rows, order, embeddings and has_image as the old in-memory path, including
    duplicates across shards, rows without an image and rows without an embedding row."""
    pairs = _with_text(
        make_pairs(40),
        {"c003": ("s1", "Blue sky."), "c030": ("s2", "blue  SKY"), "c011": ("s1", "blue sky!")},
    )
    embeddings = make_embeddings(pairs, "m", 8, without_image=5)
    embeddings = embeddings.filter(
        pc.invert(pc.is_in(embeddings[schema.CAPTION_ID], pa.array(["c020", "c021"])))
    )
    data = prepare_training_data(pairs, embeddings, tmp_path / "prepared")
    want_rows, want_matrix = in_memory_rows(pairs, embeddings)
    assert pl.read_parquet(data.train_path).equals(want_rows.drop(schema.HAS_IMAGE))
    assert np.array_equal(data.image_rows(np.arange(len(data))), want_matrix)
    assert np.array_equal(data.has_image(), want_rows[schema.HAS_IMAGE].to_numpy())
    assert data.rows_without_embedding_row == 2 and data.duplicate_captions_dropped == 2
    assert data.rows_with_image == int(want_rows[schema.HAS_IMAGE].sum())
    assert data.image_embedding_models == frozenset({"m"})
    # Same data, same run fingerprint as before streaming.
    assert data.fingerprint == in_memory_fingerprint(want_rows, want_matrix)


def test_prepared_data_is_reused_only_for_the_same_sources(tmp_path: Path) -> None:
    pairs = make_pairs(10)
    pairs_file = write_parquet_atomic(pairs, tmp_path / "p.parquet")
    embeddings = write_parquet_atomic(make_embeddings(pairs, "m", 8), tmp_path / "e.parquet")
    first = prepare_training_data([pairs_file], [embeddings], tmp_path / "prepared")
    (tmp_path / "prepared" / "marker").write_text("kept")
    again = prepare_training_data([pairs_file], [embeddings], tmp_path / "prepared")
    assert again == first and (tmp_path / "prepared" / "marker").exists()
    write_parquet_atomic(make_pairs(12), pairs_file)
    changed = prepare_training_data([pairs_file], [embeddings], tmp_path / "prepared")
    assert len(changed) == 12 and not (tmp_path / "prepared" / "marker").exists()


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda e: e.set_column(1, schema.HAS_IMAGE, pa.array([True] * len(e))),
            "null image_embedding",
        ),
        (lambda e: pa.concat_tables([e, e.slice(4, 1)]), "caption_id c004 appears more than once"),
    ],
)
def test_bad_embeddings_are_refused_with_the_row(tmp_path: Path, mutate, message) -> None:
    pairs = make_pairs(10)
    with pytest.raises(TrainingDataError, match=message):
        prepare_training_data(pairs, mutate(make_embeddings(pairs, "m", 8)), tmp_path / "p")


def test_embeddings_of_two_widths_are_refused(tmp_path: Path) -> None:
    pairs = make_pairs(10)
    narrow = make_embeddings(pairs, "m", 4).slice(0, 6)
    wide = make_embeddings(pairs, "m", 8).slice(6)
    with pytest.raises(TrainingDataError, match="c006 has a image_embedding of length 8"):
        prepare_training_data(pairs, pa.concat_tables([narrow, wide]), tmp_path / "p")


def test_one_window_is_the_full_permutation_and_windows_stay_bounded() -> None:
    (single,) = window_orders(100, 100, seed=3, epoch=1)
    assert np.array_equal(single, epoch_order(100, 3, 1))
    windows = list(window_orders(100, 30, seed=3, epoch=1))
    assert sorted(len(w) for w in windows) == [10, 30, 30, 30]
    assert all(w.max() - w.min() < 30 and w.min() % 30 == 0 for w in windows)
    assert np.array_equal(np.sort(np.concatenate(windows)), np.arange(100))
    again = list(window_orders(100, 30, seed=3, epoch=1))
    assert all(np.array_equal(a, b) for a, b in zip(windows, again, strict=True))
    other = np.concatenate(list(window_orders(100, 30, seed=3, epoch=2)))
    assert not np.array_equal(np.concatenate(windows), other)
