"""Suite-wide test settings: offline, few threads, no stray storage in the checkout."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")

import torch

# Two cores: keep each test from oversubscribing them.
torch.set_num_threads(1)
