"""Hostile citation URLs, and how to tell whether a request left the replay prefix.

Shared by tests/test_replay_urls.py (a fixed list of 40, end to end, and unit tables) and
tests/test_replay_fuzz.py (2,000 generated ones). Each hostile URL tries to make the replay
request ``/web/<ts>id_/<url>`` land somewhere else once the path is normalised: Save Page
Now (``/save/``), the CDX endpoint (on the playback budget), the availability API, another
replay URL.
"""

from __future__ import annotations

import posixpath
import random
import re
from urllib.parse import unquote

from snapcache.ids import MAX_URL_LENGTH, find_dot_segment

SAVE = "save/https://target.example/"
CDX = "cdx/search/cdx?url=target.example&output=json"
UP5 = "../" * 5

#: Forty citation URLs that each try to leave the replay prefix (or hide a dot segment).
HOSTILE: tuple[str, ...] = (
    # plain dot segments, to each endpoint
    f"https://x.example/{UP5}{SAVE}",
    f"https://x.example/{UP5}{CDX}",
    f"https://x.example/a/b/c/{UP5}{UP5}wayback/available?url=target.example",
    f"https://x.example/./././{UP5}{SAVE}",
    f"https://x.example//..//..//..//..//..//{SAVE}",
    "https://x.example/a/b/../../../../../../web/20240101000000id_/https://good.example/1",
    # percent-encoded dot segments, both cases, mixed spellings
    "https://x.example/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/" + SAVE,
    "https://x.example/%2E%2E/%2E%2E/%2E%2E/%2E%2E/%2E%2E/" + CDX,
    "https://x.example/.%2e/.%2E/%2e./%2E./%2e%2E/" + SAVE,
    "https://x.example/%2e/%2E/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/" + CDX,
    # encoded twice, encoded separators, overlong UTF-8, IIS %u, fullwidth, NUL
    "https://x.example/%252e%252e/%252e%252e/%252e%252e/%252e%252e/" + SAVE,
    "https://x.example/..%2f..%2f..%2f..%2f..%2f" + SAVE,
    "https://x.example/..%5c..%5c..%5c..%5c..%5csave",
    "https://x.example/%c0%ae%c0%ae/%c0%ae%c0%ae/%c0%ae%c0%ae/%c0%ae%c0%ae/" + SAVE,
    "https://x.example/%u002e%u002e/%u002e%u002e/%u002e%u002e/%u002e%u002e/" + SAVE,
    "https://x.example/\uff0e\uff0e/\uff0e\uff0e/\uff0e\uff0e/\uff0e\uff0e/" + SAVE,
    "https://x.example/..%00/..%00/..%00/..%00/..%00/" + SAVE,
    "http://x.example/..%252f..%252f..%252f..%252f" + SAVE,
    # backslashes
    "https://x.example/a\\..\\..\\..\\..\\..\\save\\https://target.example/",
    "https://x.example/..\\..\\..\\..\\cdx\\search\\cdx",
    # Tomcat path parameters
    f"https://x.example/..;/..;/..;/..;/..;/{SAVE}",
    f"https://x.example/..;jsessionid=1/..;/..;/..;/..;/{CDX}",
    "https://x.example/%2e%2e%3b/%2e%2e%3b/%2e%2e%3b/%2e%2e%3b/" + SAVE,
    # ? and # games: what follows them is no path, so it must stay as it is
    f"https://x.example/?/{UP5}{SAVE}",
    f"https://x.example/#/{UP5}{SAVE}",
    f"https://x.example/a?b={UP5}{SAVE}#{UP5}cdx",
    f"https://x.example/%3F/{UP5}{SAVE}",
    f"https://x.example/%23/{UP5}{SAVE}",
    # userinfo and the host itself
    f"https://x.example@target.example/{UP5}{SAVE}",
    f"https://user:..@x.example/{UP5}{SAVE}",
    f"https://../../../../{SAVE}",
    "https://%2e%2e/%2e%2e/%2e%2e/" + SAVE,
    f"HTTPS://X.EXAMPLE:443/{UP5}SAVE/",
    f"https://[::1]/{UP5}{SAVE}",
    # IDN forms
    f"https://b\u00fccher.example/{UP5}{SAVE}",
    "https://xn--bcher-kva.example/%2e%2e/%2e%2e/%2e%2e/%2e%2e/" + SAVE,
    # long: one over the limit, one just under it that climbs back to its own root
    "https://x.example/" + "../" * (MAX_URL_LENGTH // 3),
    "https://x.example/" + "a/" * 1300 + "../" * 1310 + SAVE,
    # an archive URL whose original climbs, and a calendar one whose "host" is ..
    "https://web.archive.org/web/2020/../../../../" + SAVE,
    "https://web.archive.org/web/2020*/../../../../" + SAVE,
)

def leaves_prefix(path: str, replay: str = "/web/", cdx: str = "/cdx/search/cdx") -> bool:
    """True when a request path (as the server received it) is neither under the replay
    prefix (``<replay><ts><flag>/``) nor the CDX endpoint, or could be resolved out of it.

    Two judges: the product's own :func:`find_dot_segment`, and an independent one that
    decodes three times, reads backslashes as slashes and lets ``posixpath`` resolve."""
    plain = path.split("?", 1)[0]
    if plain == cdx:
        return False
    head = re.compile(re.escape(replay) + r"\d{1,14}(?:[a-z]{2}_)?/").match(plain)
    if head is None or find_dot_segment(plain[head.end():]) is not None:
        return True
    text = plain
    for _ in range(3):
        text = unquote(text)
    resolved = posixpath.normpath(text.replace("\\", "/")) + "/"
    return not resolved.startswith(head.group(0))


# --- generated hostile URLs ------------------------------------------------------------

_SCHEMES = ("http://", "https://", "HTTPS://", "hTtP://")
_USERINFO = ("", "", "", "user@", "a:b@", "..@", "%2e%2e@", "x.example@")
_HOSTS = ("x.example", "x.example", "b\u00fccher.example", "xn--bcher-kva.example", "..",
          "%2e%2e", "127.0.0.1", "[::1]", "x.example:8080", "x.example.",
          "\uff58\uff0eexample", "a" * 63 + ".example", ".", "%2E")
_DOTS = ("..", ".", "%2e%2e", "%2E%2e", ".%2e", "%2e.", "%2E", "..;", "..;x=1", "%252e%252e",
         "..%2f", "..%2F..", "..%5c", "%c0%ae%c0%ae", "%c0%ae", "%u002e%u002e",
         "\uff0e\uff0e", "..%00", "%2e%2e%3b", "..%252f", "%%32%65%%32%65")
_WORDS = ("", "save", "cdx", "search", "web", "20240101000000id_", "https:", "target.example",
          "wayback", "available", "status", "snapcache-test", "collinfo.json", "a", "...",
          ".well-known", "%3F", "%23", "%2F", "@", ";", "%", "%zz", "~", "a b")
_SEPARATORS = ("/", "/", "/", "\\", "//", "/./", "\\..\\")
#: What a browser resolves: URLs made of these alone are fetched (resolved), not refused.
_PLAIN_DOTS = ("..", ".", "%2e%2e", "%2E%2e", ".%2e", "%2e.", "%2E")
_PLAIN_HOSTS = ("x.example", "b\u00fccher.example", "xn--bcher-kva.example", "127.0.0.1",
                "[::1]", "x.example:8080", "x.example.", "good.example")
_PLAIN_SEPARATORS = ("/", "/", "//")
_TAILS = ("", "", "", "?url=..%2f&x=/../", "#/../../save/", "?/../../cdx/search/cdx",
          "?#", "#", "?", "?a=\u00e9&b=%zz")
_GOOD_EVERY = 10


def _noise(rng: random.Random) -> str:
    """A few random characters: unicode, percent-escapes (valid or not), separators."""
    parts = []
    for _ in range(rng.randint(1, 4)):
        roll = rng.random()
        if roll < 0.3:
            parts.append(f"%{rng.randrange(256):02x}")
        elif roll < 0.5:
            parts.append(rng.choice("./\\;%?#@:"))
        elif roll < 0.8:
            parts.append(chr(rng.randrange(0xA0, 0x3000)))
        else:
            parts.append(chr(rng.randrange(0x10000, 0x10FFFF)))
    return "".join(parts)


def _plain_hostile_url(rng: random.Random) -> str:
    """A hostile URL whose dot segments are all of the kind a browser resolves."""
    path = ""
    for _ in range(rng.randint(1, 12)):
        piece = rng.choice(_PLAIN_DOTS) if rng.random() < 0.6 else rng.choice(_WORDS[:12])
        path += rng.choice(_PLAIN_SEPARATORS) + piece
    return rng.choice(_SCHEMES) + rng.choice(_PLAIN_HOSTS) + path + rng.choice(_TAILS)


def hostile_url(rng: random.Random) -> str:
    """One generated hostile citation URL (some are unusable on purpose: whitespace, no
    host, too long); two in five only use the dot segments a browser resolves."""
    if rng.random() < 0.4:
        return _plain_hostile_url(rng)
    pieces: list[str] = []
    for _ in range(rng.randint(1, 12)):
        roll = rng.random()
        if roll < 0.5:
            pieces.append(rng.choice(_DOTS))
        elif roll < 0.85:
            pieces.append(rng.choice(_WORDS))
        else:
            pieces.append(_noise(rng))
    path = ""
    for piece in pieces:
        path += rng.choice(_SEPARATORS) + piece
    url = (rng.choice(_SCHEMES) + rng.choice(_USERINFO) + rng.choice(_HOSTS) + path
           + rng.choice(_TAILS))
    if rng.random() < 0.01:
        url += "/.." * (MAX_URL_LENGTH // 3)  # past the length limit
    elif rng.random() < 0.02:
        url += "/a" * 1500 + "/.." * 1600  # long, under the limit
    return url


def hostile_list(count: int, seed: int, good: list[str]) -> list[str]:
    """``count`` generated hostile URLs with a good one (from ``good``) every tenth line."""
    rng = random.Random(seed)
    lines = []
    for index in range(count):
        lines.append(hostile_url(rng))
        if index % _GOOD_EVERY == 0:
            lines.append(good[(index // _GOOD_EVERY) % len(good)])
    return lines
