"""Dagster resources: thin, config-facing wrappers that build the plain-Python objects.

Each resource is a ConfigurableResource so the launchpad and tests can swap it; the
objects they build (paraphrase backends, sentence encoder, CLIP model) come from the
plain modules and know nothing of Dagster. ``default_resources`` builds them from
``Settings``, the one place the environment is read.
"""

from pathlib import Path
from typing import TYPE_CHECKING, Literal

import dagster as dg

from paraclip_pipeline.settings import DEFAULT_KEEP_CHECKPOINTS, Settings
from paraclip_pipeline.storage import STREAM_BATCH_ROWS, StorageLayout

if TYPE_CHECKING:  # the plain modules load lazily, when a run first needs them
    from paraclip_pipeline.modeling.factory import LoadedClip
    from paraclip_pipeline.modeling.sentence_encoder import SentenceEncoder
    from paraclip_pipeline.paraphrase.config import ParaphraserConfig
    from paraclip_pipeline.sources import ShardFile, ShardStream
    from paraclip_pipeline.training.config import TrainConfig


class StorageResource(dg.ConfigurableResource):
    """The one root under which every output lives, and the record-batch size per-shard
    assets stream their rows in (``batch_rows``: peak memory is set by it, not the shard)."""

    root: str
    batch_rows: int = STREAM_BATCH_ROWS
    # Newest checkpoints kept after each training, besides pinned ones (PARACLIP_KEEP_CHECKPOINTS).
    keep_checkpoints: int = DEFAULT_KEEP_CHECKPOINTS

    @property
    def layout(self) -> StorageLayout:
        return StorageLayout(Path(self.root))


class ShardSourceResource(dg.ConfigurableResource):
    """Where caption shards are found (local directory or fsspec URI).

    ``image_root`` is the directory a shard's relative image paths resolve against and
    must stay inside (default: the shard's own directory); paths that escape it are
    nulled, never followed.
    """

    location: str
    image_root: str | None = None
    max_caption_chars: int = 2000

    def find(self, shard_key: str) -> "ShardFile":
        from paraclip_pipeline.sources import ShardNotFoundError, find_shard

        try:
            return find_shard(self.location, shard_key)
        except ShardNotFoundError as error:
            raise dg.Failure(description=str(error), allow_retries=False) from error

    def stream(self, shard: "ShardFile", batch_rows: int, spill_dir: Path) -> "ShardStream":
        from paraclip_pipeline.sources import stream_shard

        return stream_shard(
            shard,
            max_caption_chars=self.max_caption_chars,
            image_root=self.image_root,
            batch_rows=batch_rows,
            spill_dir=spill_dir,
        )


class ParaphraserResource(dg.ConfigurableResource):
    """The LLM (or offline rewriter) that writes both paraphrasing steps.

    Every field left unset takes ParaphraserConfig's default (the paper's prompts and
    sampling parameters), so defaults and validation live in one place. The API key is
    never part of the config: ``api_key_env`` names the environment variable holding it.
    """

    backend: Literal["wordnet", "openai_compatible", "llama_cpp", "transformers", "co_captions"] = (
        "wordnet"
    )
    model: str | None = None
    base_url: str | None = None
    api_key_env: str | None = None
    concurrency: int | None = None
    timeout_s: float | None = None
    max_retries: int | None = None
    requests_per_minute: float | None = None
    tokens_per_minute: float | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    seed: int | None = None
    stage1_template: str | None = None
    stage2_template: str | None = None
    chunk_size: int | None = None
    commit_interval_s: float | None = None
    model_path: str | None = None
    n_ctx: int | None = None
    n_threads: int | None = None
    batch_size: int | None = None
    few_shot: bool | None = None

    def config(self) -> "ParaphraserConfig":
        from paraclip_pipeline.paraphrase.config import ParaphraserConfig

        return ParaphraserConfig(**self.model_dump(exclude_none=True))


class ClipModelResource(dg.ConfigurableResource):
    """Which open_clip model profile to fine-tune and evaluate."""

    profile: str = "offline-minilm"
    device: str = "cpu"

    def load(self, checkpoint: Path | None = None) -> "LoadedClip":
        from paraclip_pipeline.modeling.factory import load_clip
        from paraclip_pipeline.modeling.profiles import get_profile

        return load_clip(get_profile(self.profile), checkpoint=checkpoint, device=self.device)


class SentenceEncoderResource(dg.ConfigurableResource):
    """Sentence encoder for the meaning-kept filter rule (MiniLM offline by default)."""

    model_dir: str | None = None
    batch_size: int = 128
    device: str = "cpu"

    def load(self) -> "SentenceEncoder":
        from paraclip_pipeline.modeling.sentence_encoder import shared_sentence_encoder

        model_dir = Path(self.model_dir) if self.model_dir else None
        return shared_sentence_encoder(model_dir, self.batch_size, self.device)


class TrainingResource(dg.ConfigurableResource):
    """Hyper-parameters from a YAML file (configs as data); ``nproc`` > 1 runs torchrun."""

    config_path: str
    nproc: int = 1

    def config(self) -> "TrainConfig":
        import yaml

        from paraclip_pipeline.training.config import TrainConfig

        with open(self.config_path, encoding="utf-8") as handle:
            values = yaml.safe_load(handle) or {}
        values["nproc"] = self.nproc
        return TrainConfig(**values)


class EvaluationResource(dg.ConfigurableResource):
    """Benchmark data locations; each benchmark whose data is absent is reported as absent."""

    sts_dir: str | None = None
    aro_dir: str | None = None
    coco_dir: str | None = None
    rank_k: int = 10
    # A directory laid out like ../shared/data/eval (PARACLIP_EVAL_DATA): public benchmarks.
    eval_data_dir: str | None = None
    # Globs of its files to score (empty: all) and a per-file cap (None: all items); the demo
    # scores the dev files, capped, to stay within its 10 minutes (PARACLIP_EVAL_FILES/_MAX_ITEMS).
    eval_files: list[str] | None = None
    eval_max_items: int | None = None
    # Cache the pretrained baseline's embeddings under the storage root (it never changes).
    cache_baseline_embeddings: bool = True
    bootstrap_resamples: int = 1000


class RayResource(dg.ConfigurableResource):
    """Where the heavy steps run: no ``address`` (``PARACLIP_RAY_ADDRESS`` unset) keeps every
    step in the run's own process, as ``make demo``; an address sends training (Ray Train),
    the per-shard data steps (one Ray job per batch of partitions) and batch paraphrasing
    (an actor pool) to that cluster. Each step's materialization records its ``engine``."""

    address: str | None = None
    # Training: Ray Train workers (TrainingResource.nproc ranks) get these resources each.
    cpus_per_task: float = 1.0
    gpus_per_task: float = 0.0
    # Batch paraphrasing: actors in the pool, each one async client with many requests in flight.
    actors: int = 2
    # Restarts of a Ray Train worker group after a worker dies (it resumes from its last state).
    max_failures: int = 1

    @property
    def enabled(self) -> bool:
        return bool(self.address)

    @property
    def engine(self) -> str:
        from paraclip_pipeline.distributed import ENGINE_IN_PROCESS, ENGINE_RAY

        return ENGINE_RAY if self.enabled else ENGINE_IN_PROCESS


def default_resources(settings: Settings) -> dict[str, dg.ConfigurableResource]:
    from paraclip_pipeline.defs.io import ArrowParquetIOManagerResource

    return {
        "io_manager": ArrowParquetIOManagerResource(root=str(settings.storage_root)),
        "storage": StorageResource(
            root=str(settings.storage_root), keep_checkpoints=settings.keep_checkpoints
        ),
        "shard_source": ShardSourceResource(
            location=settings.shards_location,
            image_root=str(settings.image_root) if settings.image_root else None,
        ),
        "paraphraser": ParaphraserResource(
            backend=settings.llm_backend,  # type: ignore[arg-type]
            model=settings.llm_model,
            base_url=settings.llm_base_url,
            api_key_env=settings.llm_api_key_env,
        ),
        "clip_model": ClipModelResource(profile=settings.model_profile),
        "sentence_encoder": SentenceEncoderResource(),
        "training": TrainingResource(config_path=str(settings.train_config_path)),
        "evaluation": EvaluationResource(
            sts_dir=str(settings.sts_dir) if settings.sts_dir else None,
            eval_data_dir=str(settings.eval_data_dir) if settings.eval_data_dir else None,
            eval_files=list(settings.eval_files),
            eval_max_items=settings.eval_max_items,
        ),
        "ray": RayResource(address=settings.ray_address),
    }
