"""snapcache.junk: the classifier of captures that are not the document.

The corpus (tests/data/junk, MANIFEST.toml) holds junk pages of every kind and the
look-alikes that must never be flagged; the other tests pin each rule's guards one at a time
with facts built here.
"""

from __future__ import annotations

import collections
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from snapcache.junk import (
    HEAD_BYTES,
    TEXT_SCAN_CHARS,
    CaptureFacts,
    ContentFlag,
    classify_capture,
    describe,
    is_junk,
)

from tests import junk_corpus

PAGES = junk_corpus.load()
#: The flags a capture's URLs alone can give (where a redirect ended).
URL_FLAGS = {ContentFlag.REDIRECTED_HOME, ContentFlag.CONSENT_WALL, ContentFlag.LOGIN_WALL,
             ContentFlag.SOFT_404}


# ----------------------------------------------------------------------------- the corpus


@pytest.mark.parametrize("page", PAGES, ids=[p.file for p in PAGES])
def test_every_corpus_page_gets_its_expected_flag(page: junk_corpus.Page) -> None:
    assert classify_capture(page.facts) == page.expect, page.why


def test_the_corpus_has_sixty_pages_with_every_flag_and_its_look_alikes() -> None:
    counts = collections.Counter(p.expect for p in PAGES)
    assert len(PAGES) >= 60
    for flag in ContentFlag:
        if flag is not ContentFlag.URL_MISMATCH:  # decided by resolution, not here
            assert counts[flag] >= 4, flag
    assert counts[None] >= 20


def test_every_corpus_file_is_in_the_manifest_once() -> None:
    files = [p.file for p in PAGES]
    assert len(files) == len(set(files))
    on_disk = {f.name for f in junk_corpus.CORPUS.iterdir()} - {"MANIFEST.toml", "README.md"}
    assert on_disk == set(files)
    assert "written for snapcache" in (junk_corpus.CORPUS / "README.md").read_text()


@pytest.mark.parametrize("page", [p for p in PAGES if p.expect is not None],
                         ids=[p.file for p in PAGES if p.expect is not None])
def test_no_content_rule_flags_a_long_text(page: junk_corpus.Page) -> None:
    # The same capture with an article's worth of prose after its words: only where the
    # capture is of another URL (a redirect) may a flag remain.
    prose = "\n" + ("The council met on Tuesday to discuss the budget for the coming year. "
                    * 40)
    text = page.facts.text + prose * 3
    facts = _replace(page.facts, text=text, text_length=len(text))
    got = classify_capture(facts)
    moved = page.facts.final_url not in (None, page.facts.requested_url)
    assert got is None or (moved and got in URL_FLAGS), got


# ----------------------------------------------------------------------------- the API


def test_the_flags_are_the_nine_record_values_each_with_a_phrase() -> None:
    assert [f.value for f in ContentFlag] == [
        "challenge", "waf_block", "parked", "soft_404", "redirected_home", "consent_wall",
        "login_wall", "script_shell", "url_mismatch"]
    assert describe(ContentFlag.CHALLENGE) == "a bot challenge page"
    assert describe(ContentFlag.SCRIPT_SHELL) == "a page with no text (built by scripts)"
    assert describe(ContentFlag.URL_MISMATCH) == "a capture of another URL"
    assert len({describe(f) for f in ContentFlag}) == len(ContentFlag)
    assert ContentFlag("soft_404") is ContentFlag.SOFT_404


def test_every_flag_but_script_shell_makes_a_capture_junk() -> None:
    assert [f for f in ContentFlag if not is_junk(f)] == [ContentFlag.SCRIPT_SHELL]
    assert not is_junk(None)


def test_a_plain_real_page_is_no_junk() -> None:
    facts = CaptureFacts(requested_url="https://news.example/2020/05/story",
                         content_type="text/html", title="A story | News",
                         text="A paragraph of reporting. " * 20, head=b"<html><p>...")
    assert classify_capture(facts) is None


# ----------------------------------------------------------------------------- redirects home


@pytest.mark.parametrize(
    ("requested", "final", "home"),
    [
        ("https://ex.example/a/b", "https://ex.example/", True),
        ("https://ex.example/a/b", "https://ex.example", True),
        ("https://ex.example/a/b.pdf", "https://ex.example/index.html", True),
        ("https://ex.example/a/b", "https://other.example/", True),
        ("https://ex.example/a/b", "https://ex.example/en-gb/", True),
        ("https://ex.example/a/b", "https://ex.example/Home.aspx", True),
        ("https://ex.example/a/b", "https://ex.example/?utm_source=old&ref=x", True),
        ("https://ex.example/a/b", "https://ex.example/#/", True),
        ("https://ex.example/?p=5", "https://ex.example/", True),  # a WordPress post id
        ("https://ex.example/default.aspx?tabid=55", "https://ex.example/", True),
        # a cited root is no deep link, whatever its spelling
        ("http://ex.example/", "https://www.ex.example/", False),
        ("https://ex.example/index.html", "https://ex.example/", False),
        ("https://ex.example/en/", "https://ex.example/", False),
        ("https://ex.example", "https://other.example/", False),
        # the same page: scheme, www., trailing slash, default port, host case
        ("http://ex.example/a/b", "https://www.ex.example/a/b/", False),
        ("https://EX.example:443/a/b", "https://ex.example/a/b", False),
        # another deep page
        ("https://ex.example/a/b", "https://ex.example/a/c", False),
        ("https://ex.example/?p=5", "https://ex.example/2019/05/post/", False),
        ("https://ex.example/a/b", "https://ex.example/?p=7", False),
        ("https://ex.example/a/b", "https://ex.example/tv/", False),
        ("https://ex.example/a/b", "https://ex.example/en/a/b", False),
        ("https://ex.example/a/b", "https://ex.example/index.html/more", False),
        # nothing to compare
        ("https://ex.example/a/b", None, False),
        ("not a url", "https://ex.example/", False),
        ("https://ex.example/a/b", "https://ex.example:99999/", False),
        # a short link to a home page is a citation of that home page
        ("https://bit.ly/3xYzAb", "https://www.example.org/", False),
        ("https://t.co/AbCdEf123", "https://example.org/", False),
    ],
)
def test_redirected_home_needs_a_deep_link_that_ends_on_a_root(
    requested: str, final: str | None, home: bool
) -> None:
    facts = CaptureFacts(requested_url=requested, final_url=final, content_type="text/html",
                         title="Welcome", text="Welcome to our site. " * 30)
    expected = ContentFlag.REDIRECTED_HOME if home else None
    assert classify_capture(facts) is expected
    if final is not None:  # the chain's last hop stands for a missing final URL
        chain = CaptureFacts(requested_url=requested, redirects=("https://x.example/hop",
                                                                 final),
                             content_type="text/html", title="Welcome")
        assert classify_capture(chain) is expected


def test_a_pdf_is_judged_by_its_urls_only() -> None:
    pdf = CaptureFacts(requested_url="https://ex.example/reports/2019.pdf",
                       content_type="application/pdf", title="Page not found",
                       text="Page not found. The page you requested could not be found.")
    assert classify_capture(pdf) is None
    moved = _replace(pdf, final_url="https://ex.example/")
    assert classify_capture(moved) is ContentFlag.REDIRECTED_HOME


# ----------------------------------------------------------------------------- walls


@pytest.mark.parametrize(
    ("requested", "final", "flag"),
    [
        ("https://news.example/a/story", "https://news.example/consent?continue=%2Fa%2Fstory",
         ContentFlag.CONSENT_WALL),
        ("https://news.example/a/story", "https://news.example/privacy-gate/",
         ContentFlag.CONSENT_WALL),
        ("https://news.example/a/story", "https://consent.news.example/?return=x",
         ContentFlag.CONSENT_WALL),
        # a topic page named "consent" is a slug change, not a wall
        ("https://law.example/topics/consent-law", "https://law.example/topics/consent", None),
        # a slug change to an article whose name holds the word
        ("https://blog.example/2020/passwords", "https://blog.example/2020/login-tips", None),
        ("https://wiki.example/a/b", "https://wiki.example/login?returnto=a%2Fb",
         ContentFlag.LOGIN_WALL),
        ("https://corp.example/intranet/memo",
         "https://idp.corp.example/idp/profile/SAML2/Redirect/SSO?SAMLRequest=fZJNb4Mw",
         ContentFlag.LOGIN_WALL),
        ("https://corp.example/intranet/memo", "https://accounts.corp.example/?next=%2Fmemo",
         ContentFlag.LOGIN_WALL),
        # documentation pages named like walls, reached by a slug change
        ("https://docs.example/guide/auth", "https://docs.example/guide/sso", None),
        ("https://docs.example/api/auth", "https://docs.example/api/login", None),
        ("https://lib.example/docs/banner", "https://lib.example/docs/cookie-consent", None),
        ("https://uni.example/studies/sleep", "https://consent.uni.example/studies/sleep",
         None),
        ("https://sso.example/docs/x", "https://cas.example/cas/login?service=https%3A%2F",
         None),  # an identity host cited: its own pages are not walls
        ("https://corp.example/intranet/memo", "https://cas.corp.example/cas/login?service=x",
         ContentFlag.LOGIN_WALL),
        # an "accounts" host with no way back is a page of its own
        ("https://corp.example/annual", "https://accounts.corp.example/annual-2019", None),
        # a login or consent page cited as such
        ("https://portal.example/login", "https://portal.example/login?next=%2F", None),
        ("https://consent.example/forms/7", "https://consent.example/forms/7/", None),
        # the cited cookie policy is not the wall its capture ended on
        ("https://news.example/cookie-policy", "https://news.example/cookiewall/",
         ContentFlag.CONSENT_WALL),
        # an article about privacy sent to a consent host is still behind the wall
        ("https://news.example/tech/privacy-bill-passes",
         "https://consent.news.example/?return=%2Ftech", ContentFlag.CONSENT_WALL),
    ],
)
def test_walls_are_where_a_deep_link_ends(requested: str, final: str,
                                          flag: ContentFlag | None) -> None:
    facts = CaptureFacts(requested_url=requested, final_url=final, content_type="text/html",
                         title="Page", text="Some words. " * 50)
    assert classify_capture(facts) is flag


def test_a_sign_in_page_at_the_cited_url_needs_its_title_and_a_password_field() -> None:
    form = b'<form><input type="password" name="pw"></form>'
    facts = CaptureFacts(requested_url="https://paper.example/2022/03/story",
                         content_type="text/html", title="Log in | The Paper",
                         text="Log in to continue reading.", head=form)
    assert classify_capture(facts) is ContentFlag.LOGIN_WALL
    assert classify_capture(_replace(facts, head=b"<form></form>")) is None
    assert classify_capture(_replace(facts, title="The Paper | Story")) is None


def test_a_consent_page_at_the_cited_url_needs_its_title_and_a_consent_button() -> None:
    facts = CaptureFacts(requested_url="https://paper.example/2022/03/story",
                         content_type="text/html", title="Privacy settings",
                         text="We and our partners use cookies. Reject all. Accept all.")
    assert classify_capture(facts) is ContentFlag.CONSENT_WALL
    assert classify_capture(_replace(facts, text="Manage settings. I agree.")) is None
    assert classify_capture(_replace(facts, title="Cookies | Grandma's kitchen")) is None
    # a help page about privacy settings, cited as such
    help_page = _replace(facts, requested_url="https://paper.example/help/privacy-settings")
    assert classify_capture(help_page) is None


# ----------------------------------------------------------------------------- markers


def test_headers_are_read_plain_or_as_the_wayback_machine_replays_them() -> None:
    base = CaptureFacts(requested_url="https://site.example/a", content_type="text/html",
                        title="", text="")
    for headers in ({"cf-mitigated": "challenge"},
                    {"x-archive-orig-cf-mitigated": "challenge"},
                    {"X-Archive-Orig-CF-Mitigated": " Challenge "},
                    {"x-archive-orig-x-amzn-waf-action": "captcha"}):
        assert classify_capture(_replace(base, headers=headers)) is ContentFlag.CHALLENGE
    for headers in ({"x-sucuri-block": "EVA079"}, {"X-Archive-Orig-X-Sucuri-Block": "BNP005"}):
        assert classify_capture(_replace(base, headers=headers)) is ContentFlag.WAF_BLOCK
    # A replay's own headers beside the archived ones: the archived one is read.
    both = {"x-archive-orig-cf-mitigated": "challenge", "cf-mitigated": "none"}
    assert classify_capture(_replace(base, headers=both)) is ContentFlag.CHALLENGE
    both = {"cf-mitigated": "challenge", "x-archive-orig-cf-mitigated": "none"}
    assert classify_capture(_replace(base, headers=both)) is None
    for headers in ({"cf-mitigated": "block"}, {"x-sucuri-id": "14013"},
                    {"server": "cloudflare"}, {"x-archive-orig-server": "AkamaiGHost"}):
        assert classify_capture(_replace(base, headers=headers)) is None


def test_a_vendor_marker_quoted_in_the_text_is_no_marker() -> None:
    script = b"<script>window._cf_chl_opt={cType:'managed'}</script>"
    quoted = b"<pre>window._cf_chl_opt={cType:'managed'}</pre>"
    words = "My scraper gets this: Checking your browser... window._cf_chl_opt={cType:'managed'}"
    facts = CaptureFacts(requested_url="https://forum.example/t/1", content_type="text/html",
                         title="Help", text=words, head=quoted)
    assert classify_capture(facts) is None
    shown = "Checking your browser before accessing the site."
    assert classify_capture(_replace(facts, head=script, text=shown)) is ContentFlag.CHALLENGE


def test_scripts_vendors_put_on_ordinary_pages_are_no_challenge() -> None:
    # Cloudflare's bot-management script and Imperva's resource script sit on real pages.
    for script in (b"<script src='/cdn-cgi/challenge-platform/scripts/jsd/main.js'></script>",
                   b"<script src='/_Incapsula_Resource?SWJIYLWA=719d34d31c8e'></script>"):
        facts = CaptureFacts(requested_url="https://site.example/photos/1",
                             content_type="text/html", title="Photo of the day",
                             text="A ferry at dawn, photographed from the pier.", head=script)
        assert classify_capture(facts) is None
    empty = _replace(facts, text="", title=None)
    assert classify_capture(empty) is ContentFlag.CHALLENGE  # Imperva's, on a page with nothing


def test_the_classifier_reads_only_a_bounded_prefix() -> None:
    marker = b"<script>window._cf_chl_opt={}</script>"
    late = b"<html>" + b" " * HEAD_BYTES + marker
    facts = CaptureFacts(requested_url="https://site.example/a", content_type="text/html",
                         title="Just a moment...", text="", head=late)
    assert classify_capture(facts) is None
    assert classify_capture(_replace(facts, head=marker + late)) is ContentFlag.CHALLENGE
    # A not-found sentence past the scanned text does not count, however long the text.
    words = "x " * TEXT_SCAN_CHARS + "The page you requested could not be found."
    facts = CaptureFacts(requested_url="https://site.example/a", content_type="text/html",
                         title="Site", text=words, text_length=100, head=b"<html>" * 10**6)
    assert classify_capture(facts) is None


# ----------------------------------------------------------------------------- not found


def test_a_not_found_title_is_not_enough_where_the_cited_url_is_about_404() -> None:
    facts = CaptureFacts(requested_url="https://web.example/news/links", content_type="text/html",
                         title="404 Not Found", text="404 Not Found")
    assert classify_capture(facts) is ContentFlag.SOFT_404
    for path in ("/glossary/404", "/docs/http/status/404", "/help/page-not-found"):
        assert classify_capture(_replace(facts, requested_url="https://web.example" + path)) \
            is None


@pytest.mark.parametrize(
    ("title", "text", "flag"),
    [
        ("Page not found | Site", "Try the search box.", ContentFlag.SOFT_404),
        ("Error 404 - Page Not Found", "", ContentFlag.SOFT_404),
        ("Oops! That page can\u2019t be found. \u2013 Blog", "Maybe try a search?",
         ContentFlag.SOFT_404),
        ("Not Found", "The page you requested was not found on this server.",
         ContentFlag.SOFT_404),
        ("Shop", "Page not found. We couldn't find the page you're looking for.",
         ContentFlag.SOFT_404),
        # "Not Found" alone is a title of books and songs; apology words are common prose
        ("Not Found", "A novel. Hardback, 336 pages. Sorry to see it end.", None),
        ("Shop", "We are sorry: this product is out of stock.", None),
        ("How to fix 404 errors | Guides", "A 404 error means...", None),
        ("Errors | API", "404 Not Found: the resource you requested does not exist.", None),
    ],
)
def test_not_found_pages_need_two_signals(title: str, text: str,
                                          flag: ContentFlag | None) -> None:
    facts = CaptureFacts(requested_url="https://site.example/items/42",
                         content_type="text/html", title=title, text=text)
    assert classify_capture(facts) is flag


def test_a_redirect_to_an_error_page_is_a_soft_404_unless_it_is_an_article() -> None:
    facts = CaptureFacts(requested_url="https://site.example/news/old",
                         final_url="https://site.example/errors/404.html",
                         content_type="text/html", title="Site",
                         text="Sorry, we couldn't find that. Try the search.")
    assert classify_capture(facts) is ContentFlag.SOFT_404
    assert classify_capture(_replace(facts, text="Try the search.")) is None
    # a documentation page on a "not found" error, reached by a slug change
    docs = _replace(facts, requested_url="https://api.example/docs/errors/missing",
                    final_url="https://api.example/docs/errors/not-found", title="Errors",
                    text="Returned when the ID in the path names no object. Check the ID "
                         "and the account it belongs to; IDs are not shared between "
                         "accounts. The body says which parameter was wrong.")
    assert classify_capture(docs) is None
    article = ("A long paragraph of an article about errors, written for people. " * 8 + "\n") * 3
    assert classify_capture(_replace(facts, text=article)) is None
    aspx = _replace(facts, final_url="https://site.example/oops?aspxerrorpath=/news/old",
                    text=article)
    assert classify_capture(aspx) is ContentFlag.SOFT_404


# ----------------------------------------------------------------------------- real captures


def test_real_recorded_200s_get_no_flag_and_archived_404s_are_not_found_pages() -> None:
    # The real Wayback Machine responses recorded by other projects (tests/data/recordings):
    # home pages, fact sheets, a signpost page, all 200; and archived 404 pages.
    from snapcache.extract import extract

    from tests.wayback_emulator import PLAYBACK_RE, load_recordings

    got: collections.Counter[tuple[int, ContentFlag | None]] = collections.Counter()
    for rec in load_recordings():
        m = PLAYBACK_RE.match(rec.path[len("/web/"):])
        if not rec.has_memento_datetime or not rec.body or m is None:
            continue
        headers = {k.lower(): v for k, v in rec.headers}
        ex = extract(rec.body, headers.get("content-type"))
        facts = CaptureFacts(requested_url=m.group(3), archived_status=rec.status,
                             headers=headers, content_type=ex.content_type, title=ex.title,
                             text=ex.text, head=rec.body[:HEAD_BYTES])
        got[rec.status, classify_capture(facts)] += 1
    assert got[200, None] >= 30
    assert {key for key in got if key[0] == 200} == {(200, None)}
    assert got[404, ContentFlag.SOFT_404] >= 2


# ----------------------------------------------------------------------------- robustness


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    requested=st.one_of(st.text(max_size=60), st.sampled_from(
        ["https://a.example/x/y", "http://a.example/", "https://a.example:0/x", "ftp://a/b"])),
    final=st.one_of(st.none(), st.text(max_size=60), st.sampled_from(
        ["https://a.example/", "https://consent.a.example/?continue=x",
         "https://a.example/login?next=/", "http://[::1/x"])),
    redirects=st.lists(st.text(max_size=30), max_size=3),
    status=st.one_of(st.none(), st.integers(-5, 1000)),
    headers=st.dictionaries(st.text(max_size=30), st.text(max_size=30), max_size=5),
    content_type=st.one_of(st.none(), st.text(max_size=20), st.just("text/html")),
    title=st.one_of(st.none(), st.text(max_size=80)),
    text=st.text(max_size=400),
    text_length=st.one_of(st.none(), st.integers(-10, 10**7)),
    head=st.binary(max_size=400),
)
def test_the_classifier_never_raises_and_never_claims_a_url_mismatch(
    requested: str, final: str | None, redirects: list[str], status: int | None,
    headers: dict[str, str], content_type: str | None, title: str | None, text: str,
    text_length: int | None, head: bytes,
) -> None:
    facts = CaptureFacts(requested_url=requested, final_url=final, redirects=tuple(redirects),
                         archived_status=status, headers=headers, content_type=content_type,
                         title=title, text=text, text_length=text_length, head=head)
    flag = classify_capture(facts)
    assert flag is None or (isinstance(flag, ContentFlag) and flag is not ContentFlag.URL_MISMATCH)


def test_the_corpus_loader_builds_facts_as_the_engine_would() -> None:
    page = next(p for p in PAGES if p.file == "challenge-cf-managed.html")
    body = Path(junk_corpus.CORPUS / page.file).read_bytes()
    assert page.facts.head == body[:HEAD_BYTES]
    assert page.facts.title == "Just a moment..."
    assert page.facts.content_type == "text/html"
    assert page.facts.headers["x-archive-orig-cf-mitigated"] == "challenge"


def _replace(facts: CaptureFacts, **changes: object) -> CaptureFacts:
    import dataclasses

    return dataclasses.replace(facts, **changes)  # type: ignore[arg-type]
