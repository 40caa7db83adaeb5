"""Extraction benchmarks: preview throughput (one thread, and a pool of 2 processes), the
median PDF first-pages preview time, and peak RSS on an 80 MB PDF and a 30 MB single-line
HTML page, each measured in a fresh subprocess.

Run as a script with ``--rss KIND PATH`` it is that subprocess: it imports the extractor,
notes its RSS, extracts once and prints JSON.
"""

from __future__ import annotations

import json
import os
import random
import resource
import statistics
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))


_WORDS = ("archive", "report", "figure", "table", "survey", "results", "method", "public",
          "data", "policy")


def big_pdf(path: Path, target_bytes: int = 80_000_000, text_pages: int = 3) -> int:
    """Write a PDF of about ``target_bytes``: a few text pages, then pages each carrying an
    uncompressed 1000x1000 grey image of random bytes (incompressible, like scans)."""
    side = 1000
    img_bytes = side * side
    n_img = max(1, (target_bytes - 100_000) // img_bytes)
    pages_total = text_pages + n_img
    rng = random.Random(80)
    words = _WORDS
    objs: dict[int, bytes] = {}
    # 1 catalog, 2 pages tree, 3 font, 4 info; then per page: page, content[, image]
    next_id = 5
    page_ids: list[int] = []
    page_objs: list[tuple[int, int, int | None, bytes]] = []
    for p in range(pages_total):
        pid, cid = next_id, next_id + 1
        next_id += 2
        iid = None
        if p >= text_pages:
            iid = next_id
            next_id += 1
        lines = []
        n_lines = 40 if p < text_pages else 1
        for j in range(n_lines):
            text = " ".join(rng.choice(words) for _ in range(10))
            lines.append(f"BT /F1 11 Tf 60 {760 - j * 17} Td (Page {p + 1}: {text}) Tj ET")
        if iid is not None:
            lines.append("q 480 0 0 480 60 120 cm /Im0 Do Q")
        page_ids.append(pid)
        page_objs.append((pid, cid, iid, "\n".join(lines).encode("latin-1")))
    objs[1] = b"<< /Type /Catalog /Pages 2 0 R >>"
    kids = " ".join(f"{i} 0 R" for i in page_ids)
    objs[2] = f"<< /Type /Pages /Kids [{kids}] /Count {len(page_ids)} >>".encode()
    objs[3] = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"
    objs[4] = b"<< /Title (Big Scanned Report) /Producer (snapcache bench) >>"
    with path.open("wb") as fh:
        offsets: dict[int, int] = {}
        fh.write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")

        def put(oid: int, body: bytes, stream: bytes | None = None) -> None:
            offsets[oid] = fh.tell()
            fh.write(f"{oid} 0 obj\n".encode())
            fh.write(body)
            if stream is not None:
                fh.write(b"\nstream\n")
                fh.write(stream)
                fh.write(b"\nendstream")
            fh.write(b"\nendobj\n")

        for oid in (1, 2, 3, 4):
            put(oid, objs[oid])
        for pid, cid, iid, content in page_objs:
            res = "/Font << /F1 3 0 R >>"
            if iid is not None:
                res += f" /XObject << /Im0 {iid} 0 R >>"
            put(pid, (f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792]"
                      f" /Resources << {res} >> /Contents {cid} 0 R >>").encode())
            put(cid, f"<< /Length {len(content)} >>".encode(), content)
            if iid is not None:
                data = os.urandom(img_bytes)
                put(iid, (f"<< /Type /XObject /Subtype /Image /Width {side} /Height {side}"
                          f" /ColorSpace /DeviceGray /BitsPerComponent 8"
                          f" /Length {img_bytes} >>").encode(), data)
        xref = fh.tell()
        count = next_id
        fh.write(f"xref\n0 {count}\n".encode())
        fh.write(b"0000000000 65535 f \n")
        for oid in range(1, count):
            fh.write(f"{offsets[oid]:010d} 00000 n \n".encode())
        fh.write(f"trailer\n<< /Size {count} /Root 1 0 R /Info 4 0 R >>\n"
                 f"startxref\n{xref}\n%%EOF\n".encode())
    return path.stat().st_size


def big_html(path: Path, target_bytes: int = 30_000_000) -> int:
    """A 30 MB page on one line (no newline anywhere)."""
    rng = random.Random(30)
    words = _WORDS
    chunk = "".join(
        f"<p class='x'>{' '.join(rng.choice(words) for _ in range(40))}</p>" for _ in range(200)
    ).encode()
    with path.open("wb") as fh:
        fh.write(b"<!doctype html><html><head><meta charset='utf-8'><title>One Line Page"
                 b"</title></head><body><main>")
        while fh.tell() < target_bytes:
            fh.write(chunk)
        fh.write(b"</main></body></html>")
    return path.stat().st_size


def _extract_one(item: tuple[bytes, str]) -> int:
    from snapcache.extract import extract

    body, ctype = item
    return len(extract(body, ctype).preview)


def _warm(_: int) -> int:
    import snapcache.extract  # noqa: F401 - imports paid before timing

    return 0


def throughput(docs: list[tuple[bytes, str]], workers: int) -> float:
    """Documents per second."""
    if workers <= 1:
        t0 = time.perf_counter()
        for d in docs:
            _extract_one(d)
        return len(docs) / (time.perf_counter() - t0)
    with ProcessPoolExecutor(max_workers=workers) as pool:
        list(pool.map(_warm, range(workers * 2)))
        t0 = time.perf_counter()
        list(pool.map(_extract_one, docs, chunksize=4))
        return len(docs) / (time.perf_counter() - t0)


def rss_in_subprocess(kind: str, path: Path) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--rss", kind, str(path)],
        check=True, capture_output=True, text=True, timeout=600,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _peak_rss_kib() -> int:
    """This process's peak RSS in KiB. Linux's ``ru_maxrss`` survives ``exec``, so a child
    of a big parent would report the parent's peak: read VmHWM (reset by exec) instead."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def _rss_child(kind: str, path: str) -> None:
    from snapcache.extract import extract

    ctype = "application/pdf" if kind == "pdf" else "text/html"
    before = _peak_rss_kib()
    t0 = time.perf_counter()
    result = extract(path, ctype)
    seconds = time.perf_counter() - t0
    peak = _peak_rss_kib()
    print(json.dumps({
        "kind": kind, "seconds": seconds, "peak_rss_mb": peak / 1024,
        "after_import_rss_mb": before / 1024, "preview_chars": len(result.preview),
        "text_chars": len(result.text), "pages": result.pages, "note": result.note,
        "title": result.title,
    }))


def run(workdir: Path, *, n_html: int = 200, n_pdf: int = 40, log: Any = print) -> dict[str, Any]:
    from corpus import html_doc, pdf_doc
    from snapcache.extract import extract

    rng = random.Random(3)
    log("  generating documents ...")
    html_docs = [(html_doc(rng, f"Page {i}", 60), "text/html; charset=utf-8")
                 for i in range(n_html)]
    pdf_docs = [(pdf_doc(rng, f"Report {i}", 10), "application/pdf") for i in range(n_pdf)]
    res: dict[str, Any] = {
        "html_doc_kb": statistics.mean(len(d) for d, _ in html_docs) / 1024,
        "pdf_doc_kb": statistics.mean(len(d) for d, _ in pdf_docs) / 1024,
        "pdf_doc_pages": 10,
    }
    _extract_one(html_docs[0])
    _extract_one(pdf_docs[0])
    log("  throughput ...")
    res["html_docs_per_s_1"] = throughput(html_docs, 1)
    res["html_docs_per_s_pool2"] = throughput(html_docs, 2)
    res["pdf_docs_per_s_1"] = throughput(pdf_docs, 1)
    res["pdf_docs_per_s_pool2"] = throughput(pdf_docs, 2)
    times = []
    for body, ctype in pdf_docs:
        t0 = time.perf_counter()
        extract(body, ctype)
        times.append(time.perf_counter() - t0)
    res["pdf_preview_median_ms"] = statistics.median(times) * 1000
    res["pdf_preview_p95_ms"] = sorted(times)[int(0.95 * (len(times) - 1))] * 1000

    log("  generating the 80 MB PDF and the 30 MB one-line HTML ...")
    pdf_path = workdir / "big.pdf"
    html_path = workdir / "big.html"
    res["big_pdf_mb"] = big_pdf(pdf_path) / 1e6
    res["big_html_mb"] = big_html(html_path) / 1e6
    log("  peak RSS in fresh subprocesses ...")
    big_pdf_runs = [rss_in_subprocess("pdf", pdf_path) for _ in range(3)]
    res["big_pdf"] = big_pdf_runs[0]
    res["big_pdf_median_ms"] = statistics.median(r["seconds"] for r in big_pdf_runs) * 1000
    res["big_pdf_peak_rss_mb"] = max(r["peak_rss_mb"] for r in big_pdf_runs)
    res["big_html"] = rss_in_subprocess("html", html_path)
    res["big_html_peak_rss_mb"] = res["big_html"]["peak_rss_mb"]
    res["baseline_rss_mb"] = res["big_pdf"]["after_import_rss_mb"]
    for p in (pdf_path, html_path):
        p.unlink(missing_ok=True)
    return res


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--rss":
        _rss_child(sys.argv[2], sys.argv[3])
    else:
        sys.exit("usage: extract_bench.py --rss pdf|html PATH (normally run by bench.py)")
