"""Extraction benchmarks: preview throughput (one thread, and a pool of 2 processes), the
median PDF first-pages preview time, and peak RSS on an 80 MB PDF and a 30 MB single-line
HTML page, each measured in a fresh subprocess. :func:`pool_overhead` (the ``pool``
section) prices snapcache's bounded extraction workers against in-process extraction.

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


def _interleaved(docs: list[tuple[bytes, str]], first: Any, second: Any
                 ) -> tuple[list[float], list[float]]:
    """Per-document seconds of two extractors, alternating document by document so that
    drift in the machine's load falls on both alike."""
    a: list[float] = []
    b: list[float] = []
    for body, ctype in docs:
        t0 = time.perf_counter()
        first(body, ctype)
        a.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        second(body, ctype)
        b.append(time.perf_counter() - t0)
    return a, b


def pool_overhead(*, n_html: int = 200, n_pdf: int = 40, log: Any = print) -> dict[str, Any]:
    """What running extraction in the bounded worker pool (snapcache's way since the
    "untrusted bytes" issue) costs per document against calling ``extract`` in-process,
    with a warm pool of one worker; the start of a worker; and the PDF bomb it stops."""
    from corpus import html_doc, pdf_doc
    from snapcache.extract import ExtractLimits, ExtractPool, extract

    from tests.bombs import pdf_bomb

    rng = random.Random(3)
    html_docs = [(html_doc(rng, f"Page {i}", 60), "text/html; charset=utf-8")
                 for i in range(n_html)]
    pdf_docs = [(pdf_doc(rng, f"Report {i}", 10), "application/pdf") for i in range(n_pdf)]
    res: dict[str, Any] = {}
    starts = []
    for _ in range(3):
        with ExtractPool(workers=1) as cold:
            t0 = time.perf_counter()
            cold.extract(*html_docs[0])
            starts.append(time.perf_counter() - t0)
    res["first_doc_cold_pool_ms"] = statistics.median(starts) * 1000
    log("  pool vs in-process, per document ...")
    # PDFs are fewer and the CPU clock ticks at 10 ms: they go round a few times. A worker
    # is replaced after 500 documents, so each kind has its own pool, kept under that.
    for kind, docs, rounds in (("html", html_docs, 1), ("pdf", pdf_docs, 5)):
        with ExtractPool(workers=1) as pool:
            extract(*docs[0])
            pool.extract(*docs[0])  # warm: the worker is up and has parsed once
            inproc, pooled = _interleaved(docs, extract, pool.extract)
            res[f"{kind}_inproc_ms"] = statistics.median(inproc) * 1000
            res[f"{kind}_pool_ms"] = statistics.median(pooled) * 1000
            res[f"{kind}_overhead_ms"] = res[f"{kind}_pool_ms"] - res[f"{kind}_inproc_ms"]
            res[f"{kind}_doc_kb"] = statistics.mean(len(d) for d, _ in docs) / 1024
            # CPU per document, which the machine's load does not inflate: the caller's
            # alone in-process; the caller's plus the worker's through the pool.
            t0 = time.process_time()
            for body, ctype in docs * rounds:
                extract(body, ctype)
            res[f"{kind}_inproc_cpu_ms"] = (time.process_time() - t0) / len(docs) / rounds * 1e3
            (pid,) = pool.pids()
            w0, t0 = _cpu_s(pid), time.process_time()
            for body, ctype in docs * rounds:
                pool.extract(body, ctype)
            used = time.process_time() - t0 + _cpu_s(pid) - w0
            res[f"{kind}_pool_cpu_ms"] = used / len(docs) / rounds * 1e3
    log("  the PDF bomb through the pool ...")
    with ExtractPool(workers=1) as pool:
        pool.extract(*pdf_docs[0])
        bomb = pdf_bomb()
        rss_before = _rss_kib()
        t0 = time.perf_counter()
        stopped = pool.extract(bomb, "application/pdf")
        res["bomb_s"] = time.perf_counter() - t0
        res["bomb_kb"] = len(bomb) / 1024
        res["bomb_note"] = stopped.note
        res["bomb_parent_rss_growth_mb"] = (_rss_kib() - rss_before) / 1024
    res["max_memory_mb"] = ExtractLimits().max_memory_mb
    return res


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (Linux)."""
    with open(f"/proc/{pid}/stat") as fh:
        parts = fh.read().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


def _rss_kib() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--rss":
        _rss_child(sys.argv[2], sys.argv[3])
    else:
        sys.exit("usage: extract_bench.py --rss pdf|html PATH (normally run by bench.py)")
