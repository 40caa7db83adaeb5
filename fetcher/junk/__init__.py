"""A capture that is not the document: a pure classifier over what a fetch already knows.

The archive answers 200 for many pages that are not what was cited: a bot challenge, a
firewall's "access denied", a parked domain, a "not found" page, the site's home page after
a redirect, a cookie-consent or sign-in page. :func:`classify_capture` looks at the facts
of one capture (:class:`CaptureFacts`: the URLs, the archived status and headers, the title,
the extracted text and a bounded prefix of the raw bytes) and returns None for a real
document or one :class:`ContentFlag`. No I/O, no clock: the same facts give the same flag.

Precision comes first. A false flag hides a real capture, which is worse than letting a
junk one through, so every rule combines signals (a vendor marker AND a short text, a
not-found title AND an apology, a deep link AND a root target) and every content rule stops
at a text length no interstitial reaches: a long article that merely talks about 404 errors
or Cloudflare challenges is never flagged. A vendor's marker counts only in the markup (a
script, an attribute, a frame), not when the visible text quotes it, as a forum post about
the vendor does; an error page has no paragraphs of prose, an essay about broken links
does; and a page whose cited URL is itself about 404 errors, sign-in or consent is taken
for what it says it is. Work is bounded: at most :data:`HEAD_BYTES` of the
raw bytes, :data:`TEXT_SCAN_CHARS` of the text and :data:`TITLE_CHARS` of the title are read,
and every regular expression here is linear (no nested quantifiers, bounded repeats).

The rules (in :mod:`.rules`, one function each), in the order they are tried; the first
that holds wins:

``waf_block``: a firewall's block page, often served as 200.
    Akamai: "You don't have permission to access" with "Reference #" (the AkamaiGHost page,
    e.g. netbirdio/netbird#3670, Ekultek/WhatWaf#1162); Imperva: "Incapsula incident ID"
    (ziplokk1/incapsula-cracker-py3#1); Sucuri: the ``X-Sucuri-Block`` header or the title
    "Sucuri WebSite Firewall - Access Denied" and its GoDaddy white label (sqlmapproject/
    sqlmap#2761, Ekultek/WhatWaf#1164, D4-project/Plum-Island#121); Cloudflare: "Sorry, you
    have been blocked" (Cloudflare's "WAF block" error page type, developers.cloudflare.com/
    rules/custom-errors/reference/error-page-types; Ekultek/WhatWaf#10); AWS WAF behind
    CloudFront: "The request could not be satisfied" with "Request blocked" (AWS re:Post,
    knowledge-center/cloudfront-troubleshoot-403-errors); F5 BIG-IP ASM: "The requested URL
    was rejected. Please consult with your administrator" (ariya/phantomjs#14601,
    pulibrary/princeton_ansible#3589); and a generic "Access Denied"/"403 Forbidden" title
    over a few words about permission.
``challenge``: a JavaScript or CAPTCHA interstitial.
    The ``cf-mitigated: challenge`` header ("the only valid value ... set for all Challenge
    Page types", developers.cloudflare.com/cloudflare-challenges/challenge-types/
    challenge-pages/detect-response); AWS WAF's ``x-amzn-waf-action: challenge|captcha``
    (docs.aws.amazon.com/waf/latest/developerguide/waf-captcha-and-challenge-actions.html);
    or a vendor marker in the bytes (Cloudflare's ``_cf_chl_opt``, ``cf_chl_``, ``chl_page``,
    ``/cdn-cgi/challenge-platform/h/``, ``cf-browser-verification``, the old ``jschl_vc``/
    ``jschl_answer`` form: VeNoMouS/cloudscraper#236, codemanki/cloudscraper#76; AWS WAF's
    ``token.awswaf.com`` challenge script; DataDome's ``captcha-delivery.com`` frame;
    Imperva's ``_Incapsula_Resource`` script, ziplokk1/incapsula-cracker-py3#20) with a
    challenge title ("Just a moment...") or phrase ("checking your browser") or next to no
    text. Scripts a vendor also puts on the ordinary pages it protects (Imperva's, AWS WAF's
    SDK; Cloudflare's ``/cdn-cgi/challenge-platform/scripts/jsd/`` bot-management script,
    which is why that directory alone is no marker) count only on a page with no words.
``consent_wall``: a deep link that ends on a consent host or path
    (consent.google.com, consent.youtube.com: gosom/google-maps-scraper#277, georgekhananaev/
    google-reviews-scraper-pro#28; consent.yahoo.com and guce.yahoo.com/oath.com/aol.com:
    easylist/easylist#9281, SociallyCompute/Global-Consent-Manager#47, AdguardTeam/
    AdguardFilters#198891; ``/cookiewall``, ``/collectConsent`` paths; a ``consent.`` host or
    a ``/consent`` or ``/cookie-consent`` path only with a ``continue``/``return`` parameter,
    since those also name pages about consent), or a short page titled "Before you
    continue" or "Cookie consent" whose text holds an "Accept all" button.
``login_wall``: a deep link that ends on a sign-in URL (LinkedIn's
    ``/authwall``: linkedtales/scrapedin#134, joeyism/linkedin_scraper#61;
    accounts.google.com ``/ServiceLogin``; ``wp-login.php``; and ``/login``, ``/signin``,
    ``/sso``... or an ``accounts.``/``login.``/``idp.`` host only with a ``continue``/
    ``next``/``redirect_to``/``service``/``SAMLRequest`` parameter, since documentation
    pages bear those names too), or a short page titled "Log in"/"Sign in" with a password
    field.
``parked``: a parking or for-sale lander. Vendor markers from wappalyzer/
    wappalyzer#3796 (GoDaddy's ``parking-lander``, Namecheap's "registered at Namecheap.com",
    Hover's ``?source=parked``) and intrigueio/intrigue-ident checks/http/sedo.rb (Sedo's
    ``sedoParkingUrl``, ``FOOTER_DOMAIN_PARKING``, "this domain has been parked at your
    registrar"); for-sale phrases (funilrys/PyFunceble#255, ooni/probe#1826, cadeyrn/
    bookmarks-organizer#130) on a short page titled with the domain name, or a vendor
    marker with those words or that title.
``soft_404``: a "not found" page. An archived 404/410; a redirect to ASP.NET's error page
    (``?aspxerrorpath=``: edgi-govdata-archiving/web-monitoring-db#1426, internetarchive/
    wayback#219); and, on a page without paragraphs of prose: a redirect to an error page
    (``/404.html``, ``/error``) whose words say a page is gone or apologise; a title part
    that is a not-found title ("Page not found | Site", "Error 404") with a not-found or
    apology sentence or next to no text; a bare "Not Found" title with such a sentence; or
    a short page saying both "the page ... not found" and "you were looking for"
    (squirrelscan's two-signal soft-404 rule, docs.squirrelscan.com/rules/crawl/soft-404).
    Never when the requested URL is itself about 404 errors (``/glossary/404-not-found``).
``redirected_home``: a deep link whose capture ends on a site
    root (``/``, ``/index.html``, ``/home``, a bare language root such as ``/en/``) of the
    same or another host: the EDGI web-monitoring "error sink" (edgi-govdata-archiving/
    web-monitoring-db#1200 and #1396, web-monitoring#175). A cited root is never
    "redirected home", nor is a link shortener's link (bit.ly, t.co...) to a home page, and
    http -> https, ``www.``, a trailing slash, a default port or the host's case do not
    make another page (:func:`snapcache.untrusted.same_resource`).
``script_shell``: an HTML page with no text but scripts and an
    empty app root (``<div id="root"></div>``, ``<app-root>``) or a "You need to enable
    JavaScript" notice: a client-rendered app (madesroches/micromegas#1574, sweetalert2/
    sweetalert2.github.io#253, unyt-org/uix#126). Not junk (:func:`is_junk`): the capture
    is the page, it just has no text to preview.

``url_mismatch`` (a capture of another URL) is decided by resolution, not here; it is in
:class:`ContentFlag` so that a record has one vocabulary.
"""

from .facts import (
    HEAD_BYTES,
    TEXT_SCAN_CHARS,
    TITLE_CHARS,
    CaptureFacts,
    ContentFlag,
    describe,
    is_junk,
)
from .rules import classify_capture

__all__ = ["HEAD_BYTES", "TEXT_SCAN_CHARS", "TITLE_CHARS", "CaptureFacts", "ContentFlag",
           "classify_capture", "describe", "is_junk"]
