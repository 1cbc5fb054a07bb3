"""ParaCLIP pipeline: paraphrase-robust CLIP text encoders, orchestrated with Dagster.

Plain modules (sources, paraphrase, filtering, modeling, training, evaluation, lineage)
never import Dagster; ``defs/`` wires them into software-defined assets.
"""

from paraclip_pipeline.arrow_pool import use_jemalloc

# Before any module of the package imports pyarrow, which fixes its allocator then.
use_jemalloc()

__version__ = "0.1.0"
