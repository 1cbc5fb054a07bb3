"""IO manager for per-shard Arrow tables: ``<root>/assets/<asset>/<shard>.parquet``.

Built on Dagster's UPathIOManager so the root can be any fsspec URI (local by default,
s3:// etc. for users who mount object storage) and so an unpartitioned consumer of a
partitioned asset gets ``{shard: table}``. Local writes go through a temp file + rename:
a run killed mid-write never leaves a truncated Parquet file behind.
"""

from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
from upath import UPath

from paraclip_pipeline.storage import write_parquet_atomic


class ArrowParquetIOManager(dg.UPathIOManager):
    extension = ".parquet"

    def dump_to_path(self, context: dg.OutputContext, obj: pa.Table, path: UPath) -> None:
        if not isinstance(obj, pa.Table):
            raise TypeError(f"{context.asset_key.to_user_string()} must return a pyarrow.Table")
        if path.protocol in ("", "file", "local"):
            write_parquet_atomic(obj, Path(path.path))
        else:
            # Object stores publish a PUT atomically, so a direct write is already all-or-nothing.
            with path.open("wb") as handle:
                pq.write_table(obj, handle, compression="zstd")

    def load_from_path(self, context: dg.InputContext, path: UPath) -> pa.Table:
        with path.open("rb") as handle:
            return pq.read_table(handle)


class ArrowParquetIOManagerResource(dg.ConfigurableIOManagerFactory):
    """Config-facing factory: ``root`` is the storage root (local path or fsspec URI)."""

    root: str

    def create_io_manager(self, context: dg.InitResourceContext) -> ArrowParquetIOManager:
        return ArrowParquetIOManager(base_path=UPath(self.root) / "assets")
