"""``paraclip data download`` against a local HTTP server and file:// URLs (no network)."""

from __future__ import annotations

import functools
import http.server
import io
import json
import tarfile
import threading
import urllib.error
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from paraclip_pipeline.cli import main
from paraclip_pipeline.evaluation.public import download
from paraclip_pipeline.evaluation.public.download import (
    LOCK_FILE,
    DataSet,
    Download,
    DownloadError,
    download_all,
    download_set,
)
from paraclip_pipeline.evaluation.public.formats.caption_groups import load_caption_groups
from paraclip_pipeline.storage import sha256_file


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A directory served over HTTP on 127.0.0.1; yields (directory, base URL)."""
    root = tmp_path / "upstream"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None  # type: ignore[method-assign]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _write_tarball(path: Path, members: dict[str, bytes]) -> None:
    with tarfile.open(path, "w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))


def _paws_like(base_url: str, pinned: dict[str, str] | None = None) -> DataSet:
    return DataSet(
        "paws",
        (
            Download(
                f"{base_url}/final.tar.gz",
                download._tar_members({"final/dev.tsv": "paws/dev.tsv"}),
            ),
        ),
        pinned=pinned or {},
        layout="paws/*.tsv",
    )


def test_first_download_is_locked_then_a_changed_upstream_is_refused(
    upstream: tuple[Path, str], tmp_path: Path
) -> None:
    root, base_url = upstream
    dest = tmp_path / "eval_data"
    _write_tarball(root / "final.tar.gz", {"final/dev.tsv": b"1\ta\tb\t1\n2\tc\td\t0\n"})
    assert download_set(_paws_like(base_url), dest) == ["paws/dev.tsv"]
    lock = json.loads((dest / LOCK_FILE).read_text())
    assert lock == {"paws/dev.tsv": sha256_file(dest / "paws" / "dev.tsv")}
    assert download_set(_paws_like(base_url), dest) == ["paws/dev.tsv"]  # same bytes: fine

    _write_tarball(root / "final.tar.gz", {"final/dev.tsv": b"1\ta\tb\t0\n"})
    with pytest.raises(DownloadError, match=rf"paws/dev.tsv: sha256 .* in {LOCK_FILE}"):
        download_set(_paws_like(base_url), dest)
    assert (dest / "paws" / "dev.tsv").read_bytes() == b"1\ta\tb\t1\n2\tc\td\t0\n"
    assert not list(dest.rglob("*.tmp"))


def test_pinned_checksum_mismatch_writes_nothing(
    upstream: tuple[Path, str], tmp_path: Path
) -> None:
    root, base_url = upstream
    dest = tmp_path / "eval_data"
    _write_tarball(root / "final.tar.gz", {"final/dev.tsv": b"tampered\n"})
    with pytest.raises(DownloadError, match="pinned in the code; refusing the download"):
        download_set(_paws_like(base_url, {"paws/dev.tsv": "0" * 64}), dest)
    assert not dest.exists() or not any(dest.rglob("*"))


def test_karpathy_zip_over_file_url_becomes_caption_groups(tmp_path: Path) -> None:
    def dataset(split_of: list[str]) -> bytes:
        images = [
            {
                "split": split,
                "sentences": [{"tokens": ["image", str(i), "caption", str(j)]} for j in range(6)],
            }
            for i, split in enumerate(split_of)
        ]
        return json.dumps({"images": images}).encode()

    archive_path = tmp_path / "caption_datasets.zip"
    with zipfile.ZipFile(archive_path, "w") as archive:
        archive.writestr("dataset_coco.json", dataset(["train", "val", "val", "test"]))
        archive.writestr("dataset_flickr30k.json", dataset(["test", "test", "val"]))
    captions = DataSet("captions", (Download(archive_path.as_uri(), download._karpathy_captions),))
    dest = tmp_path / "eval_data"
    written = download_set(captions, dest)
    assert "coco_captions_dev/captions.txt" in written
    coco_dev = load_caption_groups(dest / "coco_captions_dev" / "captions.txt")
    assert coco_dev.image_count == 2  # five of the six captions per image
    assert coco_dev.captions[5] == "image 2 caption 0"
    assert load_caption_groups(dest / "f30k_captions_test" / "captions.txt").image_count == 2


def test_no_network_says_per_set_what_failed_and_what_to_set(tmp_path: Path) -> None:
    def offline(url: str) -> bytes:
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    messages: list[str] = []
    failed = download_all(tmp_path, ["mrpc", "stsb"], fetch=offline, report=messages.append)
    assert failed == ["mrpc", "stsb"]
    assert messages[0].startswith("mrpc: could not fetch https://dl.fbaipublicfiles.com/")
    assert "point PARACLIP_EVAL_DATA (or --data) at an existing copy" in messages[1]
    assert "(stsb/sts-*.csv)" in messages[1]


def test_cli_download_offline_exits_nonzero(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("network is unreachable")

    monkeypatch.setattr(download.urllib.request, "urlopen", refuse)
    assert main(["data", "download", "--dest", str(tmp_path), "--only", "paws"]) == 1
    captured = capsys.readouterr()
    assert "paws: could not fetch https://storage.googleapis.com/" in captured.out
    assert "could not fetch: paws" in captured.err
