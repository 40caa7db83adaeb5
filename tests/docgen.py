"""Documents generated at test time: PDFs (fpdf2) and HTML pages."""

from __future__ import annotations

from fpdf import FPDF

NTIA_URL = "https://www.ntia.gov/sites/default/files/publications/ntia-ai-open-model-report.pdf"
NTIA_TS = "20260408194323"
NTIA_SENTENCE = "Dual-Use Foundation Models with Widely Available Model Weights"


def make_pdf(pages: list[str], title: str | None = None) -> bytes:
    """A text PDF with one paragraph per page."""
    pdf = FPDF()
    if title:
        pdf.set_title(title)
    pdf.set_font("helvetica", size=12)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 8, text)
    return bytes(pdf.output())


def ntia_pdf() -> bytes:
    """A stand-in for the NTIA report the wiki cites, with its real title."""
    return make_pdf(
        [
            f"{NTIA_SENTENCE}. NTIA Report, July 2024. The National Telecommunications and "
            "Information Administration examines the risks and benefits of open model weights.",
            "Executive summary. Open foundation models allow broad access to capability.",
        ],
        title="NTIA AI Open Model Report",
    )


def html_page(title: str, body: str, *, charset: str = "utf-8") -> bytes:
    """A page with boilerplate (nav, script, footer) around a main article."""
    return (
        f"<!doctype html><html><head><meta charset='{charset}'><title>{title}</title>"
        "<script>var tracking = 'SCRIPT-TEXT';</script><style>.x{color:red}</style></head>"
        "<body><nav>Home | About | NAV-TEXT</nav><header>HEADER-TEXT</header>"
        f"<main><h1>{title}</h1><p>{body}</p></main>"
        "<footer>FOOTER-TEXT</footer></body></html>"
    ).encode(charset)
