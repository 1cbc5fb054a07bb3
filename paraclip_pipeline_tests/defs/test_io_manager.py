"""The IO manager hands an unpartitioned consumer {shard: table}, even for one shard."""

from pathlib import Path

import dagster as dg
import pyarrow as pa
import pytest

from paraclip_pipeline.defs.io import ArrowParquetIOManagerResource

shards = dg.DynamicPartitionsDefinition(name="io_test_shards")


@dg.asset(partitions_def=shards)
def per_shard(context: dg.AssetExecutionContext) -> pa.Table:
    return pa.table({"shard": [context.partition_key]})


@pytest.mark.parametrize("keys", [["only"], ["a", "b"]])
def test_unpartitioned_consumer_gets_a_dict_for_any_number_of_shards(
    tmp_path: Path, keys: list[str]
) -> None:
    seen: dict[str, object] = {}

    @dg.asset(ins={"per_shard": dg.AssetIn(partition_mapping=dg.AllPartitionMapping())})
    def everything(per_shard: dict[str, pa.Table]) -> None:
        seen.update(per_shard)

    resources = {"io_manager": ArrowParquetIOManagerResource(root=str(tmp_path))}
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(shards.name, keys)
        for key in keys:
            assert dg.materialize(
                [per_shard], partition_key=key, resources=resources, instance=instance
            ).success
        assert dg.materialize(
            [per_shard, everything],
            selection=[everything],
            resources=resources,
            instance=instance,
        ).success
    assert sorted(seen) == keys
    assert all(seen[key].column("shard").to_pylist() == [key] for key in keys)
