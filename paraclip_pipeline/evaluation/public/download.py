"""``paraclip data download``: fetch each public benchmark from its upstream, checksummed.

Each set is laid out like the shared ``data/eval`` directory. A file whose bytes could
be checked against the project's offline mirror has its sha256 pinned here; every other
file is recorded in ``LOCK_FILE`` beside the data on its first download and verified
against that record afterwards (trust on first use). A set is published only when all
of its files verified: each file is written to a temporary sibling and renamed, so a
failed or mismatching download leaves nothing half-written.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from paraclip_pipeline.settings import EVAL_DATA_ENV
from paraclip_pipeline.storage import write_bytes_atomic, write_text_atomic

LOCK_FILE = "eval_data.lock.json"
EVAL_DATA_DIRNAME = "eval_data"  # under the storage root
TIMEOUT_S = 60.0
KARPATHY_SPLITS = {"val": "dev", "test": "test"}
CAPTIONS_PER_IMAGE = 5


class DownloadError(Exception):
    """A set could not be fetched, unpacked or verified."""


# archive bytes -> {relative output path: bytes}
Unpack = Callable[[bytes], dict[str, bytes]]


def _single(relative: str) -> Unpack:
    return lambda data: {relative: data}


def _tar_members(members: dict[str, str]) -> Unpack:
    def unpack(data: bytes) -> dict[str, bytes]:
        out = {}
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as archive:
            for member, relative in members.items():
                handle = archive.extractfile(member)
                if handle is None:
                    raise DownloadError(f"archive lacks {member}")
                out[relative] = handle.read()
        return out

    return unpack


def _karpathy_captions(data: bytes) -> dict[str, bytes]:
    """Karpathy's caption_datasets.zip -> ``<set>_captions_<split>/captions.txt``.

    Five captions per image of the val (``dev``) and test splits, the lower-cased
    tokens joined by spaces: close to, but not byte-identical with, SCAN's PTB-tokenised
    copies (punctuation differs), so scores on them are not comparable to the mirror's.
    """
    out = {}
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for prefix, member in (("coco", "dataset_coco.json"), ("f30k", "dataset_flickr30k.json")):
            images = json.loads(archive.read(member))["images"]
            for split, name in KARPATHY_SPLITS.items():
                lines = [
                    " ".join(sentence["tokens"])
                    for image in images
                    if image["split"] == split
                    for sentence in image["sentences"][:CAPTIONS_PER_IMAGE]
                ]
                out[f"{prefix}_captions_{name}/captions.txt"] = ("\n".join(lines) + "\n").encode()
    return out


@dataclass(frozen=True)
class Download:
    url: str
    unpack: Unpack


@dataclass(frozen=True)
class DataSet:
    name: str
    downloads: tuple[Download, ...]
    # relative output path -> sha256, for files checked against the offline mirror
    pinned: dict[str, str] = field(default_factory=dict)
    layout: str = ""


STSB_FILES = ("sts-train.csv", "sts-dev.csv", "sts-test.csv", "readme.txt", "LICENSE.txt")
PAWS_SPLITS = ("train", "dev", "test")
MRPC_SPLITS = ("train", "test")
SCPP_SUBSETS = ("replace_att", "replace_obj", "replace_rel", "swap_att", "swap_obj")
SCPP_URL = "https://raw.githubusercontent.com/Sri-Harsha/scpp/main/data/{}.json"
MRPC_URL = "https://dl.fbaipublicfiles.com/senteval/senteval_data/msr_paraphrase_{}.txt"

DATASETS: dict[str, DataSet] = {
    data_set.name: data_set
    for data_set in (
        DataSet(
            "stsb",
            (
                Download(
                    "http://ixa2.si.ehu.eus/stswiki/images/4/48/Stsbenchmark.tar.gz",
                    _tar_members({f"stsbenchmark/{name}": f"stsb/{name}" for name in STSB_FILES}),
                ),
            ),
            pinned={
                "stsb/LICENSE.txt": (
                    "3dfc3217395f8c5dd05c5f8995f25fe2f8fd258e6dd770b3de480749caee8c70"
                ),
                "stsb/readme.txt": (
                    "e9488363d211c32ca5e912954f16eb9233cfed1b5b4b0475d0d812d35d7c8ef1"
                ),
                "stsb/sts-dev.csv": (
                    "5d7e944d8b02734b07bfdb5df67db3420c64bed153fcaa1ba47ad03480cf4234"
                ),
                "stsb/sts-test.csv": (
                    "affe45928a66ee5a708531233c95b7dacbbdc57f974f002a3d32ea0180cf816a"
                ),
                "stsb/sts-train.csv": (
                    "0f71910b59aa1ad973c5897f0791f3b0965a92b8f82b1a95f3eea9f4162fda82"
                ),
            },
            layout="stsb/sts-*.csv",
        ),
        DataSet(
            "paws",
            (
                Download(
                    "https://storage.googleapis.com/paws/english/paws_wiki_labeled_final.tar.gz",
                    _tar_members({f"final/{name}.tsv": f"paws/{name}.tsv" for name in PAWS_SPLITS}),
                ),
            ),
            # Upstream files carry a header line the mirror lacks: nothing to pin.
            layout="paws/*.tsv",
        ),
        DataSet(
            "mrpc",
            tuple(
                Download(MRPC_URL.format(split), _single(f"mrpc/msr_paraphrase_{split}.txt"))
                for split in MRPC_SPLITS
            ),
            # The mirror dropped the header line upstream files carry: nothing to pin.
            layout="mrpc/msr_paraphrase_*.txt",
        ),
        DataSet(
            "sugarcrepe_pp",
            tuple(
                Download(SCPP_URL.format(subset), _single(f"sugarcrepe_pp/{subset}.json"))
                for subset in SCPP_SUBSETS
            ),
            pinned={
                "sugarcrepe_pp/replace_obj.json": (
                    "5c6dc499ec8f511a8aa4ec1b7b5eb0eca90317488abe36ec39573355e2d361ab"
                ),
                "sugarcrepe_pp/swap_att.json": (
                    "450d0fd9fcad3e6f44950dc634e7f901ab1c6d9c60a569ade5ae8ffb3d203ad8"
                ),
            },
            layout="sugarcrepe_pp/*.json",
        ),
        DataSet(
            "captions",
            (
                Download(
                    "https://cs.stanford.edu/people/karpathy/deepimagesent/caption_datasets.zip",
                    _karpathy_captions,
                ),
            ),
            layout="*/captions.txt",
        ),
    )
}


DOWNLOAD_HELP = (
    f"Fetch the public benchmarks ({', '.join(DATASETS)}) from their upstreams into "
    f"<storage root>/{EVAL_DATA_DIRNAME}, laid out like the shared data/eval. Files that "
    "match the project's offline mirror have a sha256 pinned in the code; the others are "
    f"recorded in {LOCK_FILE} beside the data on first download and verified against it "
    "afterwards; a mismatch writes nothing. Without network it says, per set, what it "
    f"could not fetch. Point {EVAL_DATA_ENV} at the destination (or at any existing copy "
    "laid out the same way) to use it."
)


def _fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
        return response.read()


def _read_lock(dest: Path) -> dict[str, str]:
    path = dest / LOCK_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _verified(data_set: DataSet, files: dict[str, bytes], lock: dict[str, str]) -> dict[str, str]:
    """sha256 of each file after checking pinned and locked digests; raises on a mismatch."""
    digests = {}
    for relative, data in files.items():
        actual = hashlib.sha256(data).hexdigest()
        expected = data_set.pinned.get(relative) or lock.get(relative)
        if expected is not None and actual != expected:
            source = "pinned in the code" if relative in data_set.pinned else f"in {LOCK_FILE}"
            raise DownloadError(
                f"{relative}: sha256 {actual} does not match {expected} {source}; "
                "refusing the download (nothing was written)"
            )
        digests[relative] = actual
    return digests


def download_set(
    data_set: DataSet, dest: Path, fetch: Callable[[str], bytes] = _fetch
) -> list[str]:
    """Fetch, unpack and verify one set, then publish its files; returns their paths."""
    files: dict[str, bytes] = {}
    for download in data_set.downloads:
        try:
            payload = fetch(download.url)
        except OSError as error:  # URLError, timeouts, refused connections, missing file://
            raise DownloadError(f"could not fetch {download.url} ({error})") from error
        try:
            files.update(download.unpack(payload))
        except (tarfile.TarError, zipfile.BadZipFile, KeyError, ValueError) as error:
            raise DownloadError(f"could not unpack {download.url} ({error})") from error
    lock = _read_lock(dest)
    digests = _verified(data_set, files, lock)
    for relative, data in files.items():
        write_bytes_atomic(data, dest / relative)
    write_text_atomic(json.dumps({**lock, **digests}, indent=2, sort_keys=True), dest / LOCK_FILE)
    return sorted(files)


def download_all(
    dest: Path,
    only: list[str] | None = None,
    fetch: Callable[[str], bytes] = _fetch,
    report: Callable[[str], None] = print,
) -> list[str]:
    """Download every set (or ``only`` those); returns the names of sets that failed."""
    names = only or list(DATASETS)
    unknown = sorted(set(names) - set(DATASETS))
    if unknown:
        raise DownloadError(f"unknown data set(s) {unknown}; known: {sorted(DATASETS)}")
    failed = []
    for name in names:
        data_set = DATASETS[name]
        try:
            written = download_set(data_set, dest, fetch)
        except DownloadError as error:
            failed.append(name)
            report(
                f"{name}: {error}. Without network, point PARACLIP_EVAL_DATA (or --data) at an "
                f"existing copy laid out like the shared data/eval ({data_set.layout})."
            )
            continue
        report(f"{name}: {len(written)} file(s) verified in {dest}")
    return failed
