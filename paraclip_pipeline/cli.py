"""``paraclip``: run the demo, serve the UI, trace a checkpoint back to its captions, list or
retire shard partitions, score a model on the public benchmarks and download them."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from paraclip_pipeline.asset_names import BENCHMARK_REPORT, RAW_CAPTIONS
from paraclip_pipeline.settings import REPO_ROOT, Settings
from paraclip_pipeline.storage import StorageLayout

OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


def _offline() -> None:
    from paraclip_pipeline.quiet import silence_model_chatter

    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)
    silence_model_chatter()


def describe_data(location: str, shards: Sequence[Any]) -> str:
    """Which shards (key, format, file) the demo trains on, and where they were found."""
    lines = [f"caption shards from {location}:"]
    lines += [f"  {shard.key:<24} {shard.format:<14} {shard.path}" for shard in shards]
    return "\n".join(lines)


def describe_training(checkpoint_dir: Path) -> str:
    """How many filtered pairs of which shards the checkpoint was trained on."""
    from paraclip_pipeline.modeling.checkpoint_format import read_manifest

    manifest = read_manifest(checkpoint_dir)
    shards = ", ".join(f"{item['partition']} {item['rows']}" for item in manifest["inputs"])
    return f"trained on {manifest['trained_caption_count']} caption pairs (filtered rows: {shards})"


def describe_public_results(results_json: Path, verdict: str | None) -> str:
    """The public benchmark table of a report's results.json, and the check's verdict."""
    from paraclip_pipeline.evaluation.public.render import format_table

    records = json.loads(results_json.read_text(encoding="utf-8")).get("public_benchmarks", [])
    if not records:
        return "public benchmarks: none scored (PARACLIP_EVAL_DATA holds no benchmark file)"
    lines = ["public benchmarks (model vs pretrained baseline):", format_table(records)]
    lines.append(f"dev-regression check: {verdict or 'did not run'}")
    return "\n".join(lines)


def run_demo(settings: Settings) -> int:
    """Materialize the whole graph on every shard found, then train and report."""
    from dagster import DagsterInstance

    from paraclip_pipeline.instance import prepare_dagster_home

    layout = StorageLayout(settings.storage_root)
    prepare_dagster_home(layout.dagster_home, settings.llm_pool_limit)
    from paraclip_pipeline.definitions import defs
    from paraclip_pipeline.defs.partitions import caption_shards
    from paraclip_pipeline.lineage.shard_status import quarantine_observations
    from paraclip_pipeline.sources import discover_shards

    instance = DagsterInstance.get()
    discovery = discover_shards(settings.shards_location)
    for name, reason in discovery.rejected:
        print(f"skipping {name!r}: {reason}")
    keys = [shard.key for shard in discovery.shards]
    if not keys:
        print(f"no caption shards found in {settings.shards_location}", file=sys.stderr)
        return 2
    print(describe_data(settings.shards_location, discovery.shards))
    instance.add_dynamic_partitions(caption_shards.name, keys)
    started = time.perf_counter()
    shard_job = defs.resolve_job_def("shard_job")
    failed = []
    for key in keys:
        result = shard_job.execute_in_process(
            partition_key=key, instance=instance, raise_on_error=False
        )
        if result.success:
            rows = result.asset_materializations_for_node(RAW_CAPTIONS)[-1].metadata["rows"]
            print(f"shard {key}: ok, {rows.value} captions (run {result.run_id})")
        else:
            print(f"shard {key}: FAILED (run {result.run_id})")
            failed.append(key)
    for key, (_, reason) in sorted(quarantine_observations(instance, keys).items()):
        print(f"shard {key}: quarantined, left out of training: {reason}")
        failed.append(key)
    if len(set(failed)) == len(keys):
        print("every shard failed; see the run logs with `paraclip ui`", file=sys.stderr)
        return 1
    training = defs.resolve_job_def("training_job").execute_in_process(
        instance=instance, raise_on_error=False
    )
    if not training.success:
        print(f"training/report run {training.run_id} failed", file=sys.stderr)
        return 1
    report = training.asset_materializations_for_node(BENCHMARK_REPORT)[-1].metadata
    print(f"\ndemo finished in {time.perf_counter() - started:.0f} s")
    if failed:
        print(f"shards left out (others were used): {', '.join(sorted(set(failed)))}")
    print(f"report:     {report['report_markdown'].value}")
    print(f"html:       {report['report_html'].value}")
    print(f"checkpoint: {report['checkpoint_dir'].value}")
    print(describe_training(Path(str(report["checkpoint_dir"].value))))
    if settings.eval_data_dir is not None:
        from paraclip_pipeline.defs.report_checks import NO_DEV_REGRESSION_CHECK

        verdicts = [
            check.description or ("passed" if check.passed else "FAILED")
            for check in training.get_asset_check_evaluations()
            if check.check_name == NO_DEV_REGRESSION_CHECK
        ]
        print(describe_public_results(Path(report["results_json"].value), "; ".join(verdicts)))
    print(f"dagster UI: paraclip ui  (DAGSTER_HOME={layout.dagster_home})")
    return 0


def run_ui(settings: Settings, host: str, port: int) -> int:
    from paraclip_pipeline.instance import prepare_dagster_home

    prepare_dagster_home(StorageLayout(settings.storage_root).dagster_home, settings.llm_pool_limit)
    dagster = Path(sys.executable).with_name("dagster")
    workspace = REPO_ROOT / "workspace.yaml"
    command = [str(dagster), "dev", "-w", str(workspace), "-h", host, "-p", str(port)]
    os.execv(command[0], command)
    return 0  # unreachable: execv replaces the process


def run_lineage(
    settings: Settings,
    target: str,
    caption_id: str | None,
    shards: list[str] | None,
    as_json: bool,
) -> int:
    from paraclip_pipeline.instance import prepare_dagster_home
    from paraclip_pipeline.lineage.query import LineageError, trace

    prepare_dagster_home(StorageLayout(settings.storage_root).dagster_home, settings.llm_pool_limit)
    from dagster import DagsterInstance

    try:
        report = trace(
            target,
            layout=StorageLayout(settings.storage_root),
            instance=DagsterInstance.get(),
            caption_id=caption_id,
            shards=shards,
        )
    except LineageError as error:
        print(f"paraclip lineage: {error}", file=sys.stderr)
        return 2
    print(report.to_json() if as_json else report.to_text())
    return 0


def run_shards(settings: Settings, action: str, key: str | None) -> int:
    from dagster import DagsterInstance

    from paraclip_pipeline.defs.filtering import filtered_pairs_code_version
    from paraclip_pipeline.filtering.rules import load_rules
    from paraclip_pipeline.instance import prepare_dagster_home
    from paraclip_pipeline.lineage.shards_command import list_shards, retire_shard

    prepare_dagster_home(StorageLayout(settings.storage_root).dagster_home, settings.llm_pool_limit)
    instance = DagsterInstance.get()
    if action == "retire":
        assert key is not None  # argparse requires it
        return retire_shard(instance, key, settings.shards_location)
    rules_version = filtered_pairs_code_version(load_rules(settings.filter_rules_path))
    print(list_shards(instance, rules_version))
    return 0


def run_checkpoints(settings: Settings, args: argparse.Namespace) -> int:
    from paraclip_pipeline import retention
    from paraclip_pipeline.lineage.query import LineageError, resolve_checkpoint_dir

    layout = StorageLayout(settings.storage_root)
    if args.checkpoints_command == "prune":
        print(retention.prune_checkpoints(layout, args.keep or settings.keep_checkpoints).summary())
        return 0
    if args.checkpoints_command == "list":
        pinned = retention.pinned(layout)
        for directory in retention.checkpoints(layout):
            size = retention.directory_bytes(directory) / 1e6
            mark = "  pinned" if directory.resolve() in pinned else ""
            print(f"{directory.name}  {size:.1f} MB{mark}")
        return 0
    try:
        directory = resolve_checkpoint_dir(args.run, layout)
    except LineageError as error:
        print(f"paraclip checkpoints: {error}", file=sys.stderr)
        return 2
    if args.checkpoints_command == "pin":
        retention.pin(directory)
    else:
        retention.unpin(directory)
    print(f"{args.checkpoints_command}ned {directory}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="paraclip", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("demo", help="run the whole pipeline on the shards (demo data by default)")
    ui = commands.add_parser("ui", help="serve the Dagster UI on 127.0.0.1")
    ui.add_argument("--host", default="127.0.0.1")
    ui.add_argument("--port", type=int, default=3000)
    lineage = commands.add_parser("lineage", help="trace a checkpoint back to its source captions")
    lineage.add_argument("checkpoint", help="checkpoint directory, manifest.json, or run id")
    lineage.add_argument("--caption-id", help="show one caption's whole path")
    lineage.add_argument(
        "--shard",
        action="append",
        help="add run ids and metadata from Dagster's event log for this shard (repeatable)",
    )
    lineage.add_argument("--json", action="store_true", help="machine-readable output")
    shards = commands.add_parser("shards", help="list shard partitions with status, or retire one")
    shard_commands = shards.add_subparsers(dest="shards_command", required=True)
    shard_commands.add_parser("list", help="each shard: ok, quarantined, checks_failed, ...")
    retire = shard_commands.add_parser("retire", help="delete a shard's partition")
    retire.add_argument("key")
    checkpoints = commands.add_parser("checkpoints", help="list, prune, pin or unpin checkpoints")
    checkpoint_commands = checkpoints.add_subparsers(dest="checkpoints_command", required=True)
    checkpoint_commands.add_parser("list", help="newest first, with size and pin")
    prune = checkpoint_commands.add_parser(
        "prune", help="keep the newest N (PARACLIP_KEEP_CHECKPOINTS) and the pinned ones"
    )
    prune.add_argument("--keep", type=int, help="override the setting")
    for verb in ("pin", "unpin"):
        checkpoint_commands.add_parser(verb).add_argument("run", help="run id or unique prefix")
    _add_public_benchmark_commands(commands)
    return parser


def _add_public_benchmark_commands(commands: argparse._SubParsersAction) -> None:
    from paraclip_pipeline.evaluation.public.bootstrap import DEFAULT_RESAMPLES
    from paraclip_pipeline.evaluation.public.download import DATASETS, DOWNLOAD_HELP

    evaluate = commands.add_parser(
        "evaluate", help="score a model and its pretrained baseline on the public benchmarks"
    )
    evaluate.add_argument(
        "--model",
        required=True,
        action="append",
        help="checkpoint dir, Hugging Face model dir, or 'pretrained'; repeat it with one "
        "checkpoint per seed to score their mean, spread and seed-averaged interval",
    )
    evaluate.add_argument("--data", type=Path, help="benchmark directory (PARACLIP_EVAL_DATA)")
    evaluate.add_argument("--json", type=Path, help="write the score records as JSON")
    evaluate.add_argument("--html", type=Path, help="write an HTML table")
    evaluate.add_argument("--profile", help="model profile of the baseline (default: settings)")
    evaluate.add_argument("--resamples", type=int, default=DEFAULT_RESAMPLES)
    evaluate.add_argument(
        "--files",
        action="append",
        help=f"glob(s) relative to --data, '{os.pathsep}'-separated or repeated, of the files to "
        "score (default: PARACLIP_EVAL_FILES, else all)",
    )
    evaluate.add_argument(
        "--max-items",
        type=_positive_int,
        help="score at most N items per file, a deterministic subsample (default: "
        "PARACLIP_EVAL_MAX_ITEMS, else all)",
    )
    data = commands.add_parser("data", help="public benchmark data")
    data_commands = data.add_subparsers(dest="data_command", required=True)
    download = data_commands.add_parser("download", help=DOWNLOAD_HELP, description=DOWNLOAD_HELP)
    download.add_argument("--dest", type=Path, help="target directory")
    download.add_argument("--only", action="append", choices=sorted(DATASETS))


def _positive_int(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {value!r}")
    return int(value)


def main(argv: Sequence[str] | None = None) -> int:
    _offline()
    args = build_parser().parse_args(argv)
    settings = Settings.from_env()
    if args.command == "demo":
        return run_demo(settings)
    if args.command == "ui":
        return run_ui(settings, args.host, args.port)
    if args.command == "checkpoints":
        return run_checkpoints(settings, args)
    if args.command == "shards":
        return run_shards(settings, args.shards_command, getattr(args, "key", None))
    if args.command in ("evaluate", "data"):
        from paraclip_pipeline.evaluation.public import command

        if args.command == "data":
            return command.run_download(settings, args.dest, args.only)
        return command.run_evaluate(
            settings,
            args.model,
            args.data,
            args.json,
            args.html,
            args.profile,
            args.resamples,
            command.selection(settings, args.files, args.max_items),
        )
    return run_lineage(settings, args.checkpoint, args.caption_id, args.shard, args.json)


if __name__ == "__main__":
    sys.exit(main())
