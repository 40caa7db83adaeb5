"""Save Page Now 2 on the loopback Wayback emulator (wayback-api.md, section 5.2).

Plugs into :class:`wayback_emulator.WaybackEmulator` through its route hook:

* ``POST /save`` (form ``url=…``): 401 without the right ``Authorization: LOW key:secret``;
  HTTP 200 JSON errors (``status: error``, ``status_ext``) for scripted refusals and for a
  URL over its daily limit; else ``{"url", "job_id"}`` with a deterministic
  ``spn2-<40 hex>`` id, and, for a URL submitted again within the hour, the same job id with
  "The same snapshot had been made N minutes ago".
* ``GET /save/status/<job_id>``: ``pending`` for the scripted number of polls, then
  ``success`` with a timestamp or ``error`` with a ``status_ext``. A success (or a
  misreported failure) adds the capture to the archive, not replayable and not in the CDX
  until :meth:`SaveEmulator.make_visible` (fresh captures take a while to appear).

A hostile archive is scripted with :class:`Reply`: ``Script.submit_reply`` answers the
submission, ``Script.status_replies`` the first polls of that URL's job (in turn, then the
scripted outcome), exactly as given (any status, any bytes). :func:`random_reply` makes seeded
random answers for fuzzing.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

from tests.wayback_emulator import EmulatorResponse, WaybackEmulator


@dataclass
class Reply:
    """One answer served exactly as given: a hostile or broken archive."""

    body: bytes
    status: int = 200
    headers: list[tuple[str, str]] = field(
        default_factory=lambda: [("Content-Type", "application/json")])

    @classmethod
    def json(cls, data: object, status: int = 200) -> Reply:
        """``data`` as a JSON answer."""
        return cls(json.dumps(data).encode(), status)


@dataclass
class Script:
    """What the archive will do with one URL's capture request."""

    outcome: str = "success"
    """``success``; ``error:<ext>`` (the job fails); ``false_failure`` (the job reports
    ``error:soft-time-limit-exceeded`` but the capture is made); ``refuse:<ext>`` (the
    submission itself is refused with HTTP 200 JSON)."""
    pending_polls: int = 1
    visible: bool = True
    """Whether the new capture is replayable as soon as the job succeeds."""
    body: bytes = (b"<html><head><title>Saved now</title></head>"
                   b"<body><p>Fresh capture.</p></body></html>")
    submit_reply: Reply | None = None
    """Answer ``POST /save`` with this instead; a string ``job_id`` in it becomes a job
    whose polls get ``status_replies``."""
    status_replies: list[Reply] = field(default_factory=list)
    """Answer the first polls of this URL's job with these, in turn; later polls get the
    scripted outcome (``pending_polls`` counts all polls)."""


@dataclass
class Job:
    job_id: str
    url: str
    submitted: float
    polls: int = 0
    timestamp: str | None = None


def _json(data: dict[str, Any]) -> EmulatorResponse:
    return EmulatorResponse(200, [("Content-Type", "application/json")],
                            json.dumps(data).encode())


def _raw(reply: Reply) -> EmulatorResponse:
    return EmulatorResponse(reply.status, list(reply.headers), reply.body)


class SaveEmulator:
    """The SPN2 endpoints, with scripted outcomes per URL."""

    def __init__(self, emu: WaybackEmulator, access: str = "ACCESS123",
                 secret: str = "SECRET456", daily_limit: int = 5) -> None:
        self.emu = emu
        self.auth = f"LOW {access}:{secret}"
        self.daily_limit = daily_limit
        self.scripts: dict[str, Script] = {}
        self.jobs: dict[str, Job] = {}
        self.submissions: list[str] = []
        self.daily: dict[str, int] = {}
        #: The path of every status request (``/save/status/<job>``), as received.
        self.status_paths: list[str] = []
        emu.add_route("/save/status/", "save_status", self._status)
        emu.add_route("/save", "save", self._submit)

    def script(self, url: str, **kwargs: Any) -> Script:
        self.scripts[url] = Script(**kwargs)
        return self.scripts[url]

    def make_visible(self, url: str) -> None:
        """Let the captures made by saving ``url`` be replayed and listed."""
        for capture in self.emu.captures_for(url):
            capture.replayable = True
            capture.in_cdx = True

    def _submit(self, method: str, path: str, headers: dict[str, str], body: bytes
                ) -> EmulatorResponse:
        if headers.get("authorization") != self.auth:
            return EmulatorResponse(401, [("Content-Type", "text/html; charset=utf-8")],
                                    b"You need to be logged in to use Save Page Now.")
        if method != "POST" or path.rstrip("/") != "/save":
            return EmulatorResponse(405, [], b"method not allowed")
        url = parse_qs(body.decode("utf-8", "replace")).get("url", [""])[0]
        self.submissions.append(url)
        script = self.scripts.get(url, Script())
        if script.submit_reply is not None:
            self._hostile_job(script.submit_reply, url)
            return _raw(script.submit_reply)
        if script.outcome.startswith("refuse:"):
            return _json({"status": "error", "status_ext": script.outcome.split(":", 1)[1],
                          "message": "The capture was refused."})
        self.daily[url] = self.daily.get(url, 0) + 1
        if self.daily[url] > self.daily_limit:
            return _json({"status": "error", "status_ext": "error:too-many-daily-captures",
                          "message": f"This URL has been already captured {self.daily_limit}"
                                     " times today. Please try again tomorrow."})
        job_id = "spn2-" + hashlib.sha1(url.encode()).hexdigest()
        existing = self.jobs.get(job_id)
        if existing is not None and time.time() - existing.submitted < 3600:
            minutes = int((time.time() - existing.submitted) // 60)
            return _json({"url": url, "job_id": job_id,
                          "message": f"The same snapshot had been made {minutes} minutes ago."
                                     " You can make new capture of this URL after 1 hour."})
        self.jobs[job_id] = Job(job_id, url, time.time())
        return _json({"url": url, "job_id": job_id})

    def _hostile_job(self, reply: Reply, url: str) -> None:
        # A job ID the hostile answer hands out is followed like a real one, should the
        # client poll it.
        try:
            data = json.loads(reply.body)
        except (ValueError, RecursionError):
            return
        job_id = data.get("job_id") if isinstance(data, dict) else None
        if isinstance(job_id, str) and job_id not in self.jobs:
            self.jobs[job_id] = Job(job_id, url, time.time())

    def _status(self, method: str, path: str, headers: dict[str, str], body: bytes
                ) -> EmulatorResponse:
        if headers.get("authorization") != self.auth:
            return EmulatorResponse(401, [], b"You need to be logged in to use Save Page Now.")
        self.status_paths.append(path)
        job = self.jobs.get(path.rsplit("/", 1)[-1])
        if job is None:
            return EmulatorResponse(404, [("Content-Type", "application/json")],
                                    b'{"status": "error", "message": "Job not found"}')
        script = self.scripts.get(job.url, Script())
        job.polls += 1
        if job.polls <= len(script.status_replies):
            return _raw(script.status_replies[job.polls - 1])
        if job.polls <= script.pending_polls:
            return _json({"status": "pending", "job_id": job.job_id, "resources": []})
        if script.outcome in ("success", "false_failure") and job.timestamp is None:
            job.timestamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
            self.emu.add_capture(job.url, job.timestamp, body=script.body,
                                 replayable=script.visible, in_cdx=script.visible)
        if script.outcome == "success":
            return _json({"status": "success", "job_id": job.job_id, "original_url": job.url,
                          "timestamp": job.timestamp, "duration_sec": 6.2, "resources": [],
                          "http_status": 200})
        ext = ("error:soft-time-limit-exceeded" if script.outcome == "false_failure"
               else script.outcome)
        return _json({"status": "error", "status_ext": ext, "job_id": job.job_id,
                      "exception": "", "message": "The capture failed.", "resources": []})


# --- seeded random answers, for fuzzing ---------------------------------------------------

#: Job IDs a hostile archive might hand out: injections, paths out of /save/status/, junk.
HOSTILE_JOB_IDS: tuple[object, ...] = (
    "spn2-0123abcd\r\nX-Injected: 1", "../../web/LEAK?x=", "spn2-1/../../web/LEAK",
    "%2e%2e/%2e%2e/web/LEAK", "spn2-1#/../../web/LEAK", "spn2-", "SPN2-ABCDEF", "spn2-xyz",
    "spn2-" + "a" * 5000, "", " ", "\u0000", "spn2-ab\u2028", 12345, 1.5, True, None,
    ["spn2-ab"], {"id": "spn2-ab"}, "\ud800",
)
#: Texts a hostile archive might put in a message or a status_ext.
HOSTILE_TEXTS: tuple[str, ...] = (
    "\x1b[2J\x1b]0;owned\x07", "\u202egnp.exe", "line\r\nInjected: 1", "\x00\x01\x7f\x9b",
    "\ud800\udfff", "success", "pending", "not_replayable_yet", "error:", "error:\n",
    "error:blocked-url ", "ERROR:BLOCKED-URL", "error:made-up",
)
#: Some of the status_ext values the SPN2 documentation lists.
DOCUMENTED_ERRORS: tuple[str, ...] = (
    "error:blocked-url", "error:not-found", "error:too-many-daily-captures",
    "error:soft-time-limit-exceeded", "error:service-unavailable", "error:user-session-limit",
    "error:invalid-host-resolution", "error:job-failed", "error:no-access",
)
_STATUS_CODES: tuple[int, ...] = (200, 201, 204, 301, 302, 400, 403, 404, 418, 500, 502, 503)


def _random_text(rng: random.Random) -> object:
    roll = rng.random()
    if roll < 0.3:
        return rng.choice(HOSTILE_TEXTS)
    if roll < 0.4:
        return rng.choice(HOSTILE_TEXTS) * rng.randint(1, 5000)  # up to ~100 KB
    if roll < 0.5:
        return "".join(chr(rng.randint(0, 0x2FFF)) for _ in range(rng.randint(1, 200)))
    if roll < 0.6:
        return rng.choice([None, 0, -1, 10**30, 1.5e308, True, [], {}, ["x"], {"a": "b"}])
    return "The capture failed."


def _random_timestamp(rng: random.Random) -> object:
    now = datetime.now(UTC)
    return rng.choice([
        now.strftime("%Y%m%d%H%M%S"), "0", "20200101000000", "99991231235959",
        "20261399000000", "2026", now.strftime("%Y%m%d%H%M%S") + " ",
        int(now.strftime("%Y%m%d%H%M%S")), None, "", "\uff12\uff10\uff12\uff16", [],
    ])


def _random_job(rng: random.Random) -> object:
    roll = rng.random()
    if roll < 0.5:
        return "spn2-" + "".join(rng.choice("0123456789abcdef") for _ in range(40))
    if roll < 0.55:
        return "e70f33c7-9eca-4c88-826d-26930564d7c8"
    return rng.choice(HOSTILE_JOB_IDS)


def _random_object(rng: random.Random, url: str, for_status: bool) -> dict[str, object]:
    data: dict[str, object] = {}
    if rng.random() < 0.8:
        data["status"] = rng.choice(["error", "success", "pending", "error", "success",
                                     None, "", "SUCCESS", 1, [], "ok"])
    if rng.random() < 0.6:
        data["status_ext"] = (rng.choice(DOCUMENTED_ERRORS) if rng.random() < 0.5
                              else _random_text(rng))
    if rng.random() < (0.7 if not for_status else 0.5):
        data["job_id"] = _random_job(rng)
    if for_status and rng.random() < 0.7:
        data["timestamp"] = _random_timestamp(rng)
    if rng.random() < 0.5:
        data["message"] = _random_text(rng)
    if rng.random() < 0.3:
        data["original_url"] = rng.choice([url, "http://tracker.example/?victim=1", None, 7])
    if rng.random() < 0.1:
        data["resources"] = [f"https://x.example/{i}.js" for i in range(rng.randint(0, 600))]
    return data


def random_reply(rng: random.Random, url: str, *, for_status: bool = False) -> Reply:
    """A seeded random answer to ``POST /save`` (or, ``for_status``, to a status poll):
    any of the shapes a broken or hostile archive sends (odd status codes, JSON that is no
    object, nested hundreds of thousands deep, longer than any real answer, bytes that are
    not UTF-8, bad job IDs, status_ext values naming save statuses, capture times of 0)."""
    status = 200 if rng.random() < 0.8 else rng.choice(_STATUS_CODES)
    if for_status and rng.random() < 0.01:
        status = 401
    roll = rng.random()
    if roll < 0.55:
        return Reply(json.dumps(_random_object(rng, url, for_status)).encode(), status)
    if roll < 0.65:
        levels = rng.choice([10, 33, 1000, 100_000])
        inner = json.dumps(_random_object(rng, url, for_status)).encode()
        opener, closer = rng.choice([(b"[", b"]"), (b'{"a":', b"}"), (b'{"job_id":', b"}")])
        return Reply(opener * levels + inner + closer * levels, status)
    if roll < 0.7:
        return Reply(rng.choice([b"[]", b'"x"', b"1", b"null", b"NaN", b"1" * 6000,
                                 b"[" + b"1," * 10_000 + b"1]"]), status)
    if roll < 0.8:
        body = json.dumps(_random_object(rng, url, for_status)).encode()
        return Reply(body[: rng.randint(0, len(body))], status)  # cut short
    if roll < 0.85:
        return Reply(bytes(rng.randint(0, 255) for _ in range(rng.randint(0, 400))), status)
    if roll < 0.9:
        return Reply(b'{"status": "error", "status_ext": "\xff\xfe\xc0\xae", "job_id": '
                     b'"spn2-ab\\u0000", "message": "\\ud800"}', status)
    if roll < 0.93:
        pad = "x" * rng.choice([520 * 1024, 1024 * 1024])  # longer than any real answer
        return Reply(json.dumps({"job_id": _random_job(rng), "message": pad}).encode(), status)
    return Reply(b"<html><body>Service Unavailable</body></html>", status,
                 [("Content-Type", "text/html")])


def random_script(rng: random.Random, url: str) -> Script:
    """A seeded random :class:`Script` for ``url``: mostly hostile answers, some the
    emulator's own well-formed outcomes (so that real jobs meet hostile statuses)."""
    script = Script(outcome=rng.choice(["success", "false_failure", "error:not-found",
                                        "refuse:error:blocked-url"]),
                    pending_polls=rng.choice([0, 0, 1, 2]), visible=rng.random() < 0.7)
    if rng.random() < 0.5:
        script.submit_reply = random_reply(rng, url)
    if rng.random() < 0.6:
        script.status_replies = [random_reply(rng, url, for_status=True)
                                 for _ in range(rng.randint(1, 3))]
    return script
