"""The junk-capture classifier on its corpus: precision and recall per flag and overall, and
what it costs per page.

The corpus is tests/data/junk (MANIFEST.toml): junk pages of every kind and look-alikes,
each read by tests/junk_corpus.py into the facts a fetch would have (extraction is done
once, before any timing). :func:`run` returns the figures; bench.py's ``junk`` section
prints them. Run as a script, it prints them itself.

Precision is the share of flags given that were right (a wrong flag is a false positive of
the flag given and a miss of the one expected); recall is the share of expected flags that
were given. Precision must be 1.0: a false flag hides a real capture.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from snapcache.junk import (  # noqa: E402
    HEAD_BYTES,
    TEXT_SCAN_CHARS,
    CaptureFacts,
    ContentFlag,
    classify_capture,
    is_junk,
)

from tests import junk_corpus  # noqa: E402


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def scores(pairs: list[tuple[ContentFlag | None, ContentFlag | None]]) -> dict[str, Any]:
    """Per-flag and overall precision and recall of (expected, got) pairs."""
    tp: Counter[ContentFlag] = Counter()
    fp: Counter[ContentFlag] = Counter()
    fn: Counter[ContentFlag] = Counter()
    for expected, got in pairs:
        if got is not None and got == expected:
            tp[got] += 1
            continue
        if got is not None:
            fp[got] += 1
        if expected is not None:
            fn[expected] += 1
    per_flag = {}
    for flag in ContentFlag:
        support = tp[flag] + fn[flag]
        if support == 0 and fp[flag] == 0:
            continue
        per_flag[flag.value] = {
            "support": support, "tp": tp[flag], "fp": fp[flag], "fn": fn[flag],
            "precision": _ratio(tp[flag], tp[flag] + fp[flag]),
            "recall": _ratio(tp[flag], support),
        }
    all_tp, all_fp, all_fn = sum(tp.values()), sum(fp.values()), sum(fn.values())
    # Whether the capture is kept or set aside, whichever flag names it.
    junk_right = sum(1 for e, g in pairs if is_junk(g) and is_junk(e))
    junk_given = sum(1 for _, g in pairs if is_junk(g))
    junk_expected = sum(1 for e, _ in pairs if is_junk(e))
    return {
        "pages": len(pairs),
        "look_alikes": sum(1 for e, _ in pairs if e is None),
        "flagged_expected": all_tp + all_fn,
        "per_flag": per_flag,
        "precision": _ratio(all_tp, all_tp + all_fp),
        "recall": _ratio(all_tp, all_tp + all_fn),
        "false_flags": all_fp,
        "junk_precision": _ratio(junk_right, junk_given),
        "junk_recall": _ratio(junk_right, junk_expected),
    }


# CPU time of this thread: on a machine shared with other jobs, wall time measures the
# queue for a core as much as the classifier.
_clock = time.thread_time


def _cost_us(facts: list[CaptureFacts], rounds: int) -> list[float]:
    """CPU microseconds per page, one figure per round over every page."""
    per_round: list[float] = []
    for _ in range(rounds):
        t0 = _clock()
        for f in facts:
            classify_capture(f)
        per_round.append((_clock() - t0) / len(facts) * 1e6)
    return per_round


def _worst_case() -> CaptureFacts:
    """A page that makes every rule read all it may: a full head of markup with no marker,
    a full text prefix, a long title and redirect chain, many headers."""
    head = (b"<div class='x'><script>var a=1;</script><p>words and more words</p></div>"
            * (HEAD_BYTES // 70 + 1))[:HEAD_BYTES]
    text = ("Some ordinary words of a page that is short. " * 200)[:TEXT_SCAN_CHARS]
    return CaptureFacts(
        requested_url="https://www.example.org/a/deep/link?id=7",
        final_url="https://www.example.org/a/deep/other?id=8",
        redirects=tuple(f"https://www.example.org/hop/{i}" for i in range(10)),
        archived_status=200,
        headers={f"x-archive-orig-h{i}": "v" * 100 for i in range(300)},
        content_type="text/html",
        title="A title | " * 40,
        text=text,
        text_length=1200,
        head=head,
    )


def run(*, rounds: int = 200, log: Any = print) -> dict[str, Any]:
    """Classify the corpus: accuracy figures, misses and false flags, cost per page."""
    pages = junk_corpus.load()
    pairs = [(p.expect, classify_capture(p.facts)) for p in pages]
    res = scores(pairs)
    res["mistakes"] = [
        {"file": p.file, "expected": str(e), "got": str(g)}
        for p, (e, g) in zip(pages, pairs, strict=True) if e != g
    ]
    log(f"  junk: {len(pages)} pages, timing {rounds} rounds ...")
    facts = [p.facts for p in pages]
    _cost_us(facts, 5)  # warm the regular-expression caches
    per_round = _cost_us(facts, rounds)
    res["us_per_page_median"] = statistics.median(per_round)
    res["us_per_page_min"] = min(per_round)
    singles = []
    for f in facts:
        t0 = _clock()
        for _ in range(100):
            classify_capture(f)
        singles.append(((_clock() - t0) / 100 * 1e6, f.requested_url))
    res["us_slowest_corpus_page"] = max(singles)[0]
    worst = _worst_case()
    t0 = _clock()
    for _ in range(300):
        classify_capture(worst)
    res["us_worst_case_page"] = (_clock() - t0) / 300 * 1e6
    res["rounds"] = rounds
    return res


def rows(res: dict[str, Any]) -> list[list[str]]:
    """The per-flag table's rows, then the overall ones."""
    def fmt(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.3f}"

    out = [[flag, str(r["support"]), str(r["tp"]), str(r["fp"]), str(r["fn"]),
            fmt(r["precision"]), fmt(r["recall"])] for flag, r in res["per_flag"].items()]
    out.append(["all flags", str(res["flagged_expected"]), "", str(res["false_flags"]), "",
                fmt(res["precision"]), fmt(res["recall"])])
    out.append(["junk or not (is_junk)", "", "", "", "", fmt(res["junk_precision"]),
                fmt(res["junk_recall"])])
    return out


def main() -> int:
    res = run()
    header = ["flag", "pages", "tp", "fp", "fn", "precision", "recall"]
    table = [header, *rows(res)]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    for r in table:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
    print(f"{res['pages']} pages ({res['look_alikes']} look-alikes); "
          f"{res['us_per_page_median']:.1f} us of CPU per page (median of {res['rounds']} "
          "rounds), "
          f"slowest page {res['us_slowest_corpus_page']:.1f} us, "
          f"worst case {res['us_worst_case_page']:.1f} us")
    for m in res["mistakes"]:
        print(f"MISTAKE {m['file']}: expected {m['expected']}, got {m['got']}")
    return 0 if res["false_flags"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
