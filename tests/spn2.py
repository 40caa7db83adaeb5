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
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

from tests.wayback_emulator import EmulatorResponse, WaybackEmulator


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

    def _status(self, method: str, path: str, headers: dict[str, str], body: bytes
                ) -> EmulatorResponse:
        if headers.get("authorization") != self.auth:
            return EmulatorResponse(401, [], b"You need to be logged in to use Save Page Now.")
        job = self.jobs.get(path.rsplit("/", 1)[-1])
        if job is None:
            return EmulatorResponse(404, [("Content-Type", "application/json")],
                                    b'{"status": "error", "message": "Job not found"}')
        script = self.scripts.get(job.url, Script())
        job.polls += 1
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
