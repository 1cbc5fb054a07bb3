"""ParaCLIP pipeline: paraphrase-robust CLIP text encoders, orchestrated with Dagster.

Plain modules (sources, paraphrase, filtering, modeling, training, evaluation, lineage)
never import Dagster; ``defs/`` wires them into software-defined assets.
"""

from paraclip_pipeline.arrow_pool import prefer_jemalloc

# Before any module of the package imports pyarrow, which fixes its allocator then.
prefer_jemalloc()

__version__ = "0.1.0"
