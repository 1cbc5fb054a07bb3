"""ParaCLIP pipeline: paraphrase-robust CLIP text encoders, orchestrated with Dagster.

Plain modules (sources, paraphrase, filtering, modeling, training, evaluation, lineage)
never import Dagster; ``defs/`` wires them into software-defined assets.
"""

__version__ = "0.1.0"
