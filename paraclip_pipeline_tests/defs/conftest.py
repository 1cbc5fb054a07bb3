"""A whole pipeline on two tiny shards, in a temporary storage root and Dagster instance."""

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import pytest
import yaml

from paraclip_pipeline.definitions import build_defs
from paraclip_pipeline.defs.partitions import caption_shards
from paraclip_pipeline.paraphrase import engine
from paraclip_pipeline.settings import REPO_ROOT, Settings
from paraclip_pipeline_tests.evaluation.public.support import write_public_fixture

SHARD_CAPTIONS = {
    "shard-a": [
        "a brown dog running across a green park",
        "two children building a sandcastle on the beach",
        "a red bicycle leaning against a brick wall",
        "fresh vegetables on a wooden market stall",
        "an old man reading a newspaper on a bench",
        "a white cat sleeping on a sunny windowsill",
        "a city street at night with glowing lights",
        "a woman carrying a basket of apples",
        "a small boat floating on a calm lake",
        "a cup of coffee next to an open book",
        "IMG_2041.JPG",
        "   ",
    ],
    "shard-b": [
        "a snowy mountain peak under a clear blue sky",
        "a chef slicing onions in a busy kitchen",
        "a yellow taxi waiting at a crowded corner",
        "a young girl flying a kite in a field",
        "a plate of pasta with tomato sauce and basil",
        "a wooden bridge over a quiet river",
        "a group of friends laughing around a campfire",
        "a horse grazing in a misty meadow",
        "a modern kitchen with white cabinets",
        "a man riding a motorcycle on a desert road",
        "a brown dog running across a green park",
    ],
}

TINY_TRAINING = {
    "lr": 1e-4,
    "warmup_steps": 1,
    "batch_size": 8,
    "epochs": 1,
    "max_steps": 3,
    "checkpoint_every_steps": 2,
    "log_every_steps": 1,
}


@dataclass
class CallCounter:
    """Every paraphrase backend the pipeline built, so tests can sum their model calls."""

    backends: list = field(default_factory=list)

    @property
    def calls(self) -> int:
        return sum(backend.calls for backend in self.backends)


@dataclass
class Pipeline:
    settings: Settings
    instance: dg.DagsterInstance
    counter: CallCounter
    rules_path: Path

    @property
    def defs(self) -> dg.Definitions:
        # Rebuilt on each access, as a code-location reload would after a rules edit.
        return build_defs(self.settings)

    def defs_with(self, **resources: object) -> dg.Definitions:
        return build_defs(self.settings, resources=resources)

    @property
    def shard_keys(self) -> list[str]:
        return sorted(SHARD_CAPTIONS)

    def run_shard(self, key: str, defs: dg.Definitions | None = None):
        job = (defs or self.defs).resolve_job_def("shard_job")
        return job.execute_in_process(partition_key=key, instance=self.instance)

    def run_all_shards(self) -> None:
        defs = self.defs
        for key in self.shard_keys:
            assert self.run_shard(key, defs).success

    def run_training(self):
        job = self.defs.resolve_job_def("training_job")
        return job.execute_in_process(instance=self.instance)

    def edit_rules(self, edit) -> None:
        rules = yaml.safe_load(self.rules_path.read_text(encoding="utf-8"))
        edit(rules)
        self.rules_path.write_text(yaml.safe_dump(rules, sort_keys=False), encoding="utf-8")

    def relax_pass_rate(self) -> None:
        """For tests not about the pass-rate check: any share of kept rows is fine."""
        self.edit_rules(lambda rules: rules.update(pass_rate={"min": 0.0, "max": 1.0}))


def write_tiny_shards(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for key, captions in SHARD_CAPTIONS.items():
        lines = [json.dumps({"id": f"{key}-{i}", "caption": c}) for i, c in enumerate(captions)]
        (directory / f"{key}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.fixture
def pipeline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Pipeline]:
    shards = tmp_path / "shards"
    write_tiny_shards(shards)
    rules_path = tmp_path / "filter_rules.yaml"
    shutil.copy(REPO_ROOT / "data" / "filter_rules.yaml", rules_path)
    train_path = tmp_path / "train.yaml"
    train_path.write_text(yaml.safe_dump(TINY_TRAINING), encoding="utf-8")
    settings = Settings(
        storage_root=tmp_path / "storage",
        shards_location=str(shards),
        image_root=None,
        filter_rules_path=rules_path,
        train_config_path=train_path,
        sts_dir=None,
        model_profile="tiny-random",
        refresh_cron="0 2 * * *",
        eval_data_dir=write_public_fixture(tmp_path / "eval"),
    )
    counter = CallCounter()
    real_build = engine.build_backend

    def counting_build(config):
        backend = real_build(config)
        counter.backends.append(backend)
        return backend

    monkeypatch.setattr(engine, "build_backend", counting_build)
    (tmp_path / "dagster_home").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster_home")) as instance:
        instance.add_dynamic_partitions(caption_shards.name, sorted(SHARD_CAPTIONS))
        yield Pipeline(settings, instance, counter, rules_path)
