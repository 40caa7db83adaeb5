"""The rules of the junk classifier, one function per :class:`ContentFlag`, and
:func:`classify_capture`, which tries them in order. The rules, their markers and the
sources of those markers are listed in the docstring of :mod:`snapcache.junk`.
"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import SplitResult, parse_qsl

from .facts import CaptureFacts, ContentFlag, PageView

__all__ = ["classify_capture"]


def _any_in(haystack: str, needles: tuple[str, ...]) -> bool:
    return any(n in haystack for n in needles)


def _segments(parts: SplitResult) -> list[str]:
    return [s for s in parts.path.lower().split("/") if s][:32]


def _host(parts: SplitResult) -> str:
    return (parts.hostname or "").rstrip(".").lower()


# --- waf_block ------------------------------------------------------------------------

#: Block pages are a few sentences; no rule on their words looks past this length.
BLOCK_TEXT_MAX: Final = 1500
_VENDOR_BLOCK_TITLES: Final = frozenset({
    "sucuri website firewall - access denied",
    "godaddy security - access denied",
    "access denied - sucuri website firewall",
})
_GENERIC_BLOCK_TITLES: Final = frozenset({
    "access denied", "403 forbidden", "forbidden", "request rejected", "request blocked",
    "error 403", "403 - forbidden", "access forbidden",
})
_PERMISSION_PHRASES: Final = (
    "don't have permission to access", "do not have permission to access",
    "not authorized to access", "access denied", "access is denied",
    "request has been blocked", "request was rejected", "you are not allowed to access",
)


def _waf_block(p: PageView) -> bool:
    if p.text_len > BLOCK_TEXT_MAX:
        return False
    if p.header("x-sucuri-block"):
        return True
    title, text, parts = p.title, p.text, p.title_parts
    if title in _VENDOR_BLOCK_TITLES:
        return True
    # Each vendor's words together with its title (or server), so that a short note that
    # quotes a block page is not one.
    if "permission to access" in text and "reference #" in text and (
        "access denied" in parts or "akamaighost" in p.header("server")
    ):
        return True  # Akamai
    if p.text_len <= 600 and (
        p.in_markup(("incapsula incident id",))
        or text.startswith("request unsuccessful. incapsula incident id")
    ):
        return True  # Imperva: the words are the fallback content of its frame
    if "you have been blocked" in text and ("cloudflare" in title or "cloudflare ray id" in text):
        return True
    if "request could not be satisfied" in title and "request blocked" in text:
        return True  # AWS WAF on CloudFront
    if "request rejected" in parts and "requested url was rejected" in text:
        return True  # F5 BIG-IP ASM
    return (
        p.text_len <= 600
        and any(part in _GENERIC_BLOCK_TITLES for part in parts)
        and _any_in(text, _PERMISSION_PHRASES)
    )


# --- challenge ------------------------------------------------------------------------

#: With no words to go on, a vendor marker decides only on a page this empty.
TINY_TEXT: Final = 200
#: Markers only a challenge page carries.
_CHALLENGE_MARKERS: Final = (
    "_cf_chl_opt", "cf_chl_", "/cdn-cgi/challenge-platform/h/", "orchestrate/chl_page",
    "orchestrate/jsch", "orchestrate/managed", "orchestrate/captcha",
    "cf-browser-verification", "jschl_vc", "jschl_answer", "jschl-answer",
    "captcha-delivery.com",
)
#: Scripts a vendor also puts on ordinary pages it protects (Imperva's resource script,
#: AWS WAF's integration SDK): a challenge only on a page with no words at all.
_SHARED_MARKERS: Final = ("_incapsula_resource", "token.awswaf.com", "awswafintegration")
#: ... "no words at all": a stray word or two.
EMPTY_TEXT: Final = 20
_CHALLENGE_TITLES: Final = frozenset({
    "just a moment...", "just a moment", "attention required! | cloudflare", "one more step",
    "please wait...", "security check", "human verification", "pardon our interruption",
    "checking your browser", "ddos protection", "are you a robot?", "verifying...",
})
_CHALLENGE_PHRASES: Final = (
    "checking your browser", "checking if the site connection is secure",
    "verify you are human", "verifying you are human", "verify that you are human",
    "needs to review the security of your connection", "complete the security check",
    "enable javascript and cookies to continue", "made us think you were a bot",
    "please stand by, while we are checking", "press & hold", "i'm not a robot",
)


def _challenge(p: PageView) -> bool:
    if p.text_len > BLOCK_TEXT_MAX:
        return False
    if p.header("cf-mitigated") == "challenge":
        return True
    if p.header("x-amzn-waf-action") in ("challenge", "captcha"):
        return True
    titled = p.title in _CHALLENGE_TITLES
    worded = _any_in(p.text, _CHALLENGE_PHRASES)
    if p.in_markup(_CHALLENGE_MARKERS):
        return titled or worded or p.text_len <= TINY_TEXT
    if p.in_markup(_SHARED_MARKERS):
        return titled or worded or p.text_len <= EMPTY_TEXT
    # No vendor marker (a vendor we do not know): both the title and the words, and little
    # else on the page.
    return titled and worded and p.text_len <= 600


# --- consent_wall and login_wall ------------------------------------------------------

#: Interstitials with buttons and a paragraph or two; content rules stop here.
WALL_TEXT_MAX: Final = 1500
# Query keys by which a wall says where to send the visitor back.
_RETURN_PARAMS: Final = frozenset({
    "continue", "next", "return", "returnurl", "return_url", "returnto", "return_to",
    "redirect", "redirect_uri", "redirect_url", "redirect_to", "redirecturl",
    "sessionredirect", "session_redirect", "dest", "destination", "goto", "done",
    "service", "samlrequest", "relaystate",  # CAS and SAML sign-in
})
_CONSENT_HOSTS: Final = frozenset({
    "consent.google.com", "consent.youtube.com", "consent.yahoo.com", "guce.yahoo.com",
    "guce.oath.com", "guce.aol.com", "consent.aol.com",
})
_CONSENT_LABELS: Final = frozenset({"consent", "guce"})
# Path segments only a wall has; those of _CONSENT_TOPICS also name pages about consent (a
# library's docs on its "/cookie-consent" banner), and count with a way back only.
_CONSENT_SEGMENTS: Final = frozenset({
    "cookiewall", "cookie-wall", "collectconsent", "privacy-gate", "privacygate",
})
_CONSENT_TOPICS: Final = frozenset({
    "consent", "cookie-consent", "cookieconsent", "gdpr-consent", "privacy-consent",
})
_CONSENT_TITLES: Final = frozenset({
    "cookie consent", "privacy settings", "your privacy choices", "we value your privacy",
    "privacy choices", "cookie settings", "your privacy", "cookie preferences",
    "privacy preferences",
})
# Only buttons that give consent: "I agree" or "Manage settings" are words of other pages.
_CONSENT_BUTTONS: Final = (
    "accept all", "agree and continue", "accept and continue", "accept cookies",
    "allow all cookies", "alle akzeptieren", "tout accepter",
)


def _return_keys(parts: SplitResult) -> bool:
    keys = {k.lower() for k, _ in parse_qsl(parts.query[:2000], keep_blank_values=True)}
    return bool(keys & _RETURN_PARAMS)


def _consent_url(parts: SplitResult, *, strict: bool) -> bool:
    """Whether ``parts`` is a consent wall's URL; with ``strict``, one that can be nothing
    else (a known consent host, a wall's path, or a consent host or path naming the page to
    go back to), else one that may be about consent (to recognise a cited consent page)."""
    host = _host(parts)
    stems = {s.split(".", 1)[0] for s in _segments(parts)}
    if host in _CONSENT_HOSTS or stems & _CONSENT_SEGMENTS:
        return True
    maybe = host.split(".", 1)[0] in _CONSENT_LABELS or bool(stems & _CONSENT_TOPICS)
    return maybe and (not strict or _return_keys(parts))


def _consent_wall(p: PageView) -> bool:
    req = p.requested
    if req is None or _consent_url(req, strict=False):
        return False  # a consent page cited as such
    if p.moved and p.final is not None and _consent_url(p.final, strict=True):
        return True
    if not p.is_page or p.text_len > WALL_TEXT_MAX:
        return False
    if _any_in(req.path.lower(), ("cookie", "privacy", "consent")):
        return False  # the cited page may be ABOUT cookies or privacy: its words decide nothing
    if p.title.startswith("before you continue"):
        return True  # Google's and YouTube's consent interstitial
    return any(part in _CONSENT_TITLES for part in p.title_parts) and _any_in(
        p.text, _CONSENT_BUTTONS
    )


# Path segments only a sign-in wall has; those of _LOGIN_TOPICS also name documentation
# pages ("/docs/sso", "/api/login"), and count with a way back only.
_LOGIN_SEGMENTS: Final = frozenset({"servicelogin", "authwall", "wp-login"})
_LOGIN_TOPICS: Final = frozenset({
    "login", "log-in", "log_in", "logon", "signin", "sign-in", "sign_in", "signon",
    "sign-on", "authenticate", "sso", "cas",
})
_LOGIN_LABELS: Final = frozenset({"login", "signin", "accounts", "auth", "sso", "idp"})
_LOGIN_TITLES: Final = frozenset({
    "log in", "login", "sign in", "sign-in", "signin", "log in or sign up",
    "sign in to continue", "log in to continue", "member login", "login required",
    "sign in required", "please log in", "please sign in", "anmelden", "connexion",
    "iniciar sesion", "iniciar sesi\u00f3n", "user login", "account login",
})
_PASSWORD_FIELD_RE: Final = re.compile(r"""type\s*=\s*["']?password""")


def _login_url(parts: SplitResult, *, strict: bool) -> bool:
    """Whether ``parts`` is a sign-in wall's URL; ``strict`` as for consent: a wall's
    path, or a sign-in path or identity host naming the page to go back to."""
    stems = {s.split(".", 1)[0] for s in _segments(parts)}
    if stems & _LOGIN_SEGMENTS:
        return True
    maybe = bool(stems & _LOGIN_TOPICS) or _host(parts).split(".", 1)[0] in _LOGIN_LABELS
    return maybe and (not strict or _return_keys(parts))


def _login_wall(p: PageView) -> bool:
    req = p.requested
    if req is None or _login_url(req, strict=False):
        return False  # a sign-in page cited as such
    if p.moved and p.final is not None and _login_url(p.final, strict=True):
        return True
    if not p.is_page or p.text_len > WALL_TEXT_MAX:
        return False
    return any(part in _LOGIN_TITLES for part in p.title_parts) and bool(
        _PASSWORD_FIELD_RE.search(p.head)
    )


# --- parked ---------------------------------------------------------------------------

#: Parking landers carry a list of sponsored links at most.
PARKED_TEXT_MAX: Final = 2500
_PARKING_MARKERS: Final = (
    "sedoparkingurl", "footer_domain_parking", "sedoparking.com", "parking-lander",
    "webpackjsonpparking-lander", "?source=parked", "parkingcrew.net",
)
_PARKED_PHRASES: Final = (
    "this domain is for sale", "this domain may be for sale", "this domain name is for sale",
    "the domain name is for sale", "this domain is available for sale", "buy this domain",
    "make an offer on this domain", "inquire about this domain", "get this domain",
    "this web page is parked free", "this domain has been parked",
    "this domain is parked", "domain is parked free", "parked free, courtesy of",
    "registered at namecheap.com", "this domain was recently registered",
    "the domain has expired", "this domain has expired",
)
_DOMAIN_TITLE_RE: Final = re.compile(r"(?:www\.)?[a-z0-9-]{1,63}(?:\.[a-z0-9-]{1,63}){1,4}")


def _parked(p: PageView) -> bool:
    if not p.is_page or p.text_len > PARKED_TEXT_MAX:
        return False
    title = p.title
    domain_titled = bool(_DOMAIN_TITLE_RE.fullmatch(title)) or _any_in(
        title, ("for sale", "parked", "domain expired", "domain reserved")
    )
    worded = _any_in(p.text, _PARKED_PHRASES)
    if p.in_markup(_PARKING_MARKERS):
        return worded or domain_titled or p.text_len <= TINY_TEXT
    return worded and (domain_titled or p.text_len <= 800)


# --- soft_404 -------------------------------------------------------------------------

#: A "not found" page with its site's menus and footer; longer is an article.
NOT_FOUND_TEXT_MAX: Final = 3000
#: ... and at most this much of it in paragraphs: an essay about broken links is not one.
NOT_FOUND_PROSE_MAX: Final = 400
# A title part that says "not found" about a page or with the code: enough on a bare page.
_NOT_FOUND_TITLE_RE: Final = re.compile(
    r"(?:(?:http )?error )?404(?: error)?(?: -)?(?: (?:page|file) not found)?"
    r"|(?:error )?404 not found"
    r"|(?:oops |sorry )?(?:the )?(?:page|file|document) (?:was )?not found"
    r"|(?:oops |sorry )?(?:that |this |the )?page (?:can't|cannot|could not|couldn't) be found"
    r"|page (?:does not|doesn't) exist|page no longer exists"
    r"|seite nicht gefunden|fehler 404|p\u00e1gina no encontrada|pagina no encontrada"
    r"|page non trouv\u00e9e|page introuvable|pagina non trovata|pagina niet gevonden"
)
# "Not Found" alone may be a book's or a song's title: it needs the page's words too.
_BARE_NOT_FOUND: Final = frozenset({"not found", "nothing found"})
# "The page ... is gone" sentences, all about a PAGE: a reference page about HTTP errors
# talks of resources and status codes instead.
_PAGE_GONE: Final = (
    "page not found", "page cannot be found", "page could not be found",
    "page can't be found", "page couldn't be found", "page was not found",
    "page does not exist", "page doesn't exist", "page no longer exists",
    "page you requested could not", "page you requested was not",
    "page you requested does not", "nothing was found at this location",
    "seite nicht gefunden", "seite konnte nicht gefunden werden",
    "p\u00e1gina no encontrada", "page introuvable", "page non trouv\u00e9e",
    "pagina non trovata",
)
_CODE_404: Final = ("error 404", "404 error", "404 not found", "404 - not found")
# What an error page says to its visitor (not "sorry" alone: prose says that too).
_APOLOGY: Final = (
    "you're looking for", "you are looking for", "you were looking for", "you requested",
    "we can't find", "we couldn't find", "we could not find", "we cannot find",
    "mistyped", "check the url", "check the address", "may have been moved",
    "might have been moved", "may have been removed", "might have been removed",
    "has been moved or deleted", "try searching", "try a search",
    "return to the home page", "return to our home page", "go to the home page",
    "back to the home page", "go back home", "die sie suchen", "que vous recherchez",
    "que vous cherchez", "que buscas", "que est\u00e1 buscando",
)
# The last path segment of an error page a server redirects to.
_ERROR_PAGE_SEGMENT_RE: Final = re.compile(
    r"(?:404|error|error-?404|404-?error|not-?found|page-?not-?found|pagenotfound)"
    r"(?:\.[a-z]{2,5})?"
)
_ABOUT_404_RE: Final = re.compile(r"404|not-?found|not_found|notfound")


def _aspx_error(parts: SplitResult) -> bool:
    """ASP.NET's customErrors redirect, which names the path that failed."""
    return "aspxerrorpath=" in parts.query.lower()[:2000]


def _error_page_url(parts: SplitResult) -> bool:
    segments = _segments(parts)
    return bool(segments) and bool(_ERROR_PAGE_SEGMENT_RE.fullmatch(segments[-1]))


def _soft_404(p: PageView) -> bool:
    req = p.requested
    if req is None or _ABOUT_404_RE.search(req.path.lower()[:2000]):
        return False  # the cited page may be ABOUT 404 errors
    if not p.is_page or p.text_len > NOT_FOUND_TEXT_MAX:
        return False
    text = p.text
    gone = _any_in(text, _PAGE_GONE)
    said = gone or _any_in(text, _CODE_404)
    apology = _any_in(text, _APOLOGY)
    if p.facts.archived_status in (404, 410):
        return True
    moved_to = p.final if p.moved else None
    if moved_to is not None and _aspx_error(moved_to):
        return True
    if p.prose > NOT_FOUND_PROSE_MAX:
        return False
    if moved_to is not None and _error_page_url(moved_to):
        return gone or apology  # about a page, to a visitor: not docs on a "not-found" error
    parts = p.title_parts
    if any(_NOT_FOUND_TITLE_RE.fullmatch(part) for part in parts):
        return said or apology or p.text_len <= 300
    if any(part in _BARE_NOT_FOUND for part in parts):
        return said or apology
    # No not-found title (the site's name kept): say so early, and apologise.
    return apology and p.text_len <= BLOCK_TEXT_MAX and _any_in(text[:800], _PAGE_GONE)


# --- redirected_home ------------------------------------------------------------------

_ROOT_PATH_RE: Final = re.compile(
    r"/?(?:(?:index|default|home)(?:\.[a-z]{2,5})?"
    r"|(?:en|de|fr|es|it|nl|pt|ru|ja|zh|ko|pl|sv|da|no|nb|fi|cs|tr|ar|he|el|hu|ro|uk)"
    r"(?:[-_][a-z]{2})?)?/?"
)
# Query keys that do not make a root another page (trackers, where the visitor came from).
_ROOT_QUERY_KEYS: Final = frozenset({
    "ref", "referrer", "source", "src", "from", "lang", "locale", "hl", "redirect",
    "redirected", "redirect_from", "r", "error", "err", "msg", "message", "notfound",
    "missing", "old", "oldurl", "origin", "gclid", "fbclid",
})


# Link shorteners: their deep links lead wherever their owner chose, a home page included.
_SHORTENERS: Final = frozenset({
    "bit.ly", "t.co", "tinyurl.com", "goo.gl", "ow.ly", "buff.ly", "is.gd", "lnkd.in",
    "fb.me", "dlvr.it", "rebrand.ly", "tiny.cc", "j.mp", "trib.al", "ift.tt", "wp.me",
    "amzn.to", "aka.ms", "shorturl.at", "cutt.ly", "rb.gy", "s.id", "v.gd", "bl.ink",
})


def _is_root(parts: SplitResult) -> bool:
    path = parts.path.lower()
    if len(path) > 32 or not _ROOT_PATH_RE.fullmatch(path):
        return False
    keys = [k.lower() for k, _ in parse_qsl(parts.query[:2000], keep_blank_values=True)]
    return all(k.startswith("utm_") or k in _ROOT_QUERY_KEYS for k in keys)


def _redirected_home(p: PageView) -> bool:
    req, final = p.requested, p.final
    if req is None or final is None or not p.moved:
        return False
    if _host(req).removeprefix("www.") in _SHORTENERS:
        return False  # a short link whose target is a home page: that is what was cited
    return not _is_root(req) and _is_root(final)


# --- script_shell ---------------------------------------------------------------------

_APP_ROOT_RE: Final = re.compile(
    r"""<div[^<>]{0,120}?\bid\s*=\s*["']?(?:root|app|__next|__nuxt|___gatsby|svelte)"""
    r"""["']?[^<>]{0,120}>\s{0,200}</div>|<app-root[\s>]|\bng-app\b"""
)
_NEEDS_JS: Final = (
    "you need to enable javascript", "please enable javascript", "enable javascript to run",
    "requires javascript", "javascript is required", "javascript must be enabled",
)
SHELL_TEXT_MAX: Final = 200


def _script_shell(p: PageView) -> bool:
    if p.text_len > SHELL_TEXT_MAX or not p.is_page:
        return False
    head = p.head
    if "<script" not in head or "<frameset" in head:
        return False
    return bool(_APP_ROOT_RE.search(head)) or _any_in(p.text, _NEEDS_JS) or _any_in(
        head, _NEEDS_JS
    )


# --- the classifier -------------------------------------------------------------------

_RULES: Final = (
    (ContentFlag.WAF_BLOCK, _waf_block, True),
    (ContentFlag.CHALLENGE, _challenge, True),
    (ContentFlag.CONSENT_WALL, _consent_wall, False),
    (ContentFlag.LOGIN_WALL, _login_wall, False),
    (ContentFlag.PARKED, _parked, True),
    (ContentFlag.SOFT_404, _soft_404, False),
    (ContentFlag.REDIRECTED_HOME, _redirected_home, False),
    (ContentFlag.SCRIPT_SHELL, _script_shell, True),
)


def classify_capture(facts: CaptureFacts) -> ContentFlag | None:
    """None when ``facts`` describe a real document, else the first :class:`ContentFlag`
    whose rule holds (the module docstring lists the rules and their sources).

    Never flags ``url_mismatch`` (resolution decides that). Reads at most
    :data:`HEAD_BYTES` of ``facts.head`` and :data:`TEXT_SCAN_CHARS` of ``facts.text``;
    never raises for odd input (an unparsable URL only disables the URL rules)."""
    page = PageView(facts)
    for flag, rule, needs_page in _RULES:
        if needs_page and not page.is_page:
            continue
        if rule(page):
            return flag
    return None
