"""The training stream: the weights of the in-memory loop, any worker count, exact resume."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from paraclip_pipeline.training.checkpoint import adopt_unfinished, state_root_for
from paraclip_pipeline.training.prepare import prepare_training_data
from paraclip_pipeline.training.stream import micro_batches
from paraclip_pipeline_tests.training.tiny_runs import (
    assert_same_training,
    stop_at_step,
    train_tiny,
)

# weights_sha256 of main's in-memory loop (fee911a, before streaming) on the tiny fixture,
# one torch thread as the suite's conftest sets (the float sums depend on the thread count):
# the stream must reproduce them while the rows fit one shuffle window.
IN_MEMORY_WEIGHTS = {
    "base": "5fd8c919034f09b20d5cbfb6996a435d7c71d6d21959f00d203ab2c3a71a3465",
    "accum": "9d23e089f66e2c7d02d608217e91a6c09466970a52507d7875d9db5c2e1aeaa3",
}


@pytest.mark.parametrize(
    ("name", "update"),
    [
        ("base", {}),
        ("accum", {"batch_size": 4, "grad_accum_steps": 2, "epochs": 3, "seed": 5}),
    ],
)
def test_one_window_reproduces_the_in_memory_weights(
    tiny_data, tiny_config, tmp_path, name, update
) -> None:
    result = train_tiny(tiny_data, tiny_config.model_copy(update=update), tmp_path / name)
    assert result.manifest["weights_sha256"] == IN_MEMORY_WEIGHTS[name]
    assert 0.0 <= result.metrics["data_wait_share"] < 1.0
    assert not (tmp_path / f"{name}.train-data").exists()  # the prepared data is removed


def _batches(data, tokenizer, *, workers: int, rank: int = 0, world_size: int = 1, start=0):
    return list(
        micro_batches(
            data,
            tokenizer,
            workers=workers,
            per_epoch=5,
            start=start,
            stop=10,
            micro=4,
            rank=rank,
            world_size=world_size,
            seed=1,
            shuffle_buffer=7,
        )
    )


def _same(left, right) -> bool:
    return len(left) == len(right) and all(
        all(torch.equal(a, b) for a, b in zip(x, y, strict=True))
        for x, y in zip(left, right, strict=True)
    )


def test_workers_ranks_and_resume_see_the_same_batches(tiny_data, tiny_clip, tmp_path) -> None:
    """Micro-batches that span shuffle windows: 2 workers == 0 workers; the two ranks'
    slices are halves of the one-rank batch; starting at batch 3 skips exactly 0..2."""
    pairs, embeddings = tiny_data
    data = prepare_training_data(pairs, embeddings, tmp_path / "prepared")
    tokenizer = tiny_clip.tokenizer
    inline = _batches(data, tokenizer, workers=0)
    assert len(inline) == 10 and inline[0].tokens.shape[0] == 3 * 4
    assert _same(_batches(data, tokenizer, workers=2), inline)
    assert _same(_batches(data, tokenizer, workers=0, start=3), inline[3:])
    halves = [_batches(data, tokenizer, workers=2, rank=r, world_size=2) for r in (0, 1)]
    for whole, first, second in zip(inline, *halves, strict=True):
        assert torch.equal(torch.cat([first.images, second.images]), whole.images)
        captions = torch.cat([first.tokens[:2], second.tokens[:2]])
        assert torch.equal(captions, whole.tokens[:4])
    epochs = [torch.cat([b.images for b in inline[:5]]), torch.cat([b.images for b in inline[5:]])]
    assert not torch.equal(epochs[0], epochs[1])  # each epoch has its own order


@pytest.mark.parametrize("workers", [0, 2])
def test_the_stream_leaves_the_global_rng_alone(tiny_data, tiny_clip, tmp_path, workers) -> None:
    """The loop seeds torch for each step's dropout and then takes the next batch: a
    loader that drew from the global RNG (a new DataLoader iterator does, every epoch)
    changed the dropout masks, and with them the weights of a model with dropout."""
    pairs, embeddings = tiny_data
    data = prepare_training_data(pairs, embeddings, tmp_path / "prepared")
    torch.manual_seed(11)
    before = torch.get_rng_state()
    batches = _batches(data, tiny_clip.tokenizer, workers=workers)
    assert len(batches) == 10  # two epochs: two loaders
    assert torch.equal(torch.get_rng_state(), before)


def test_resume_mid_epoch_is_exact(tiny_data, tiny_config, tmp_path) -> None:
    """Several windows, accumulation, a state saved in the middle of an epoch."""
    config = tiny_config.model_copy(
        update={"shuffle_buffer": 7, "batch_size": 4, "grad_accum_steps": 2, "epochs": 2}
    )  # 3 steps per epoch; the state at step 2 is mid-epoch 0
    config = config.model_copy(update={"checkpoint_every_steps": 2})
    reference = train_tiny(tiny_data, config, tmp_path / "uninterrupted")
    with pytest.raises(KeyboardInterrupt):
        train_tiny(tiny_data, config, tmp_path / "interrupted", log=stop_at_step(3))
    assert (state_root_for(tmp_path / "interrupted") / "step-00000002").is_dir()
    messages: list[str] = []
    resumed = train_tiny(tiny_data, config, tmp_path / "interrupted", log=messages.append)
    assert any("step 2/6 (epoch 0, micro-batch 4)" in m for m in messages)
    assert_same_training(reference, resumed)


def test_a_reexecution_adopts_its_parents_state_and_resumes(
    tiny_data, tiny_config, tmp_path
) -> None:
    """Dagster names a re-execution's checkpoint by its new run id: the failed parent's
    state and prepared data move to that name and training resumes at the parent's step."""
    config = tiny_config.model_copy(update={"checkpoint_every_steps": 2})
    reference = train_tiny(tiny_data, config, tmp_path / "reference")
    with pytest.raises(KeyboardInterrupt):
        train_tiny(tiny_data, config, tmp_path / "parent", log=stop_at_step(3))
    (tmp_path / "parent-seed7.train-state").mkdir()  # another seed's state moves as well
    adopted = adopt_unfinished(tmp_path, "parent", "child")
    assert sorted(path.name for path in adopted) == [
        "child-seed7.train-state",
        "child.train-data",
        "child.train-state",
    ]
    assert not list(tmp_path.glob("parent*"))
    assert adopt_unfinished(tmp_path, "parent", "child") == []  # nothing left to adopt
    assert adopt_unfinished(tmp_path, None, "child") == []  # a first execution has no parent
    messages: list[str] = []
    resumed = train_tiny(tiny_data, config, tmp_path / "child", log=messages.append)
    assert any(m.startswith("resuming from") and "step 2/" in m for m in messages)
    assert_same_training(reference, resumed)


def _probe(work: Path, rows: int, dim: int) -> dict[str, float]:
    work.mkdir()
    probe = [sys.executable, "-m", "paraclip_pipeline_tests.training.memory_probe"]
    done = subprocess.run(
        [*probe, str(work), str(rows), str(dim)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_memory_does_not_grow_with_the_data(tmp_path: Path) -> None:
    """Prepare + one epoch at 50k and 200k rows of 512-wide embeddings: the in-memory path
    held the whole matrix (+293 MB between the two) and its Arrow copy; here neither peak
    may grow by 200 MB (measured: about +80 MB for prepare, DuckDB's capped buffers, and
    +0 for the epoch)."""
    small = _probe(tmp_path / "small", 50_000, 512)
    large = _probe(tmp_path / "large", 200_000, 512)
    assert large["rows_seen"] > 190_000
    growth = large["embedding_matrix_mb"] - small["embedding_matrix_mb"]
    assert growth > 290
    for peak in ("prepare_peak_mb", "epoch_peak_mb"):
        assert large[peak] - small[peak] < 200, (peak, small, large)
