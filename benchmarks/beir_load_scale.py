"""Loading a large BEIR corpus: time and peak memory at two sizes, to show they grow linearly.

Writes synthetic BEIR folders (documents of about 60 words) with N and 10*N documents, loads each with
``load_beir`` in a fresh subprocess, and prints wall time, peak RSS and RSS per document.

    .venv/bin/python benchmarks/beir_load_scale.py [--documents 100000]
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORDS = "cell protein gene cancer patient disease study risk effect treatment mouse human blood brain level".split()


def write_folder(folder: Path, documents: int) -> Path:
    rng = random.Random(0)
    folder.mkdir(parents=True)
    with open(folder / "corpus.jsonl", "w", encoding="utf-8") as handle:
        for index in range(documents):
            text = " ".join(rng.choices(WORDS, k=60))
            handle.write(json.dumps({"_id": f"doc{index}", "title": f"title {index}", "text": text}) + "\n")
    with open(folder / "queries.jsonl", "w", encoding="utf-8") as handle:
        for index in range(1000):
            handle.write(json.dumps({"_id": f"q{index}", "text": " ".join(rng.choices(WORDS, k=8))}) + "\n")
    (folder / "qrels").mkdir()
    rows = [f"q{i}\tdoc{rng.randrange(documents)}\t1" for i in range(1000)]
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "\n".join(rows) + "\n")
    return folder


def load_in_subprocess(folder: Path, cache: Path) -> dict[str, float]:
    code = (
        "import json, resource, sys, time; from syntriever_hf.data import load_beir; t = time.perf_counter(); "
        f"b = load_beir({str(folder)!r}, cache_dir={str(cache)!r}); s = time.perf_counter() - t; "
        "print(json.dumps({'seconds': s, 'documents': len(b.corpus), "
        "'peak_rss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--documents", type=int, default=100_000, help="The smaller size N (the larger is 10*N).")
    args = parser.parse_args()
    baseline = subprocess.run([sys.executable, "-c", "import resource, syntriever_hf.data; "
                               "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)"],
                              capture_output=True, text=True, check=True)
    import_mb = float(baseline.stdout.strip())
    print(f"peak RSS after importing syntriever_hf.data alone: {import_mb:.0f} MB")
    print(f"{'documents':>10} {'file MB':>8} {'load s':>7} {'peak RSS MB':>12} {'RSS-import per doc (bytes)':>27}")
    with tempfile.TemporaryDirectory() as tmp:
        for documents in (args.documents, 10 * args.documents):
            folder = write_folder(Path(tmp) / f"corpus-{documents}", documents)
            size_mb = (folder / "corpus.jsonl").stat().st_size / 2**20
            start = time.perf_counter()
            result = load_in_subprocess(folder, Path(tmp) / f"cache-{documents}")
            per_doc = (result["peak_rss_mb"] - import_mb) * 2**20 / documents
            print(f"{documents:>10} {size_mb:>8.0f} {result['seconds']:>7.1f} {result['peak_rss_mb']:>12.0f} "
                  f"{per_doc:>27.0f}   (wall incl. start-up {time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()
