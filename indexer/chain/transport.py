"""The HTTP transport of the RPC client: POST a body, get the status, headers and body back.

It knows nothing of JSON-RPC. A request that gets no answer at all (a timeout, a refused, reset or
dropped connection) raises `TransportError`; every answer, whatever its status, is returned.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import requests
import urllib3

_HEADERS = {"Content-Type": "application/json"}


class TransportError(Exception):
    """No answer: `kind` is "timeout" or "connection"; the message names the URL."""

    def __init__(self, kind: Literal["timeout", "connection"], message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


@dataclass(frozen=True)
class HttpAnswer:
    """One HTTP answer: status, headers (case-insensitive, e.g. Retry-After) and the whole body."""

    status: int
    headers: Mapping[str, str]
    content: bytes


class HttpTransport:
    """POSTs over one `requests.Session` (connection pool) per live thread.

    A sync reads logs on a thread of its own, one per tick; a session whose thread has ended goes to
    the next new thread, connection and all, and the other ended threads' sessions are closed.
    """

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.sessions: dict[threading.Thread, requests.Session] = {}
        self._lock = threading.Lock()

    def session(self) -> requests.Session:
        """The calling thread's session."""
        me = threading.current_thread()
        session = self.sessions.get(me)
        if session is None:
            with self._lock:
                ended = [t for t in self.sessions if not t.is_alive()]
                session = self.sessions.pop(ended[0]) if ended else requests.Session()
                for t in ended[1:]:
                    self.sessions.pop(t).close()
                self.sessions[me] = session
        return session

    def post(self, url: str, body: bytes) -> HttpAnswer:
        """POST `body` as JSON to `url` and read the whole answer; TransportError when none comes."""
        try:
            resp = self.session().post(url, data=body, headers=_HEADERS, timeout=self.timeout, stream=True)
            content = _read_body(resp)
        except requests.Timeout:
            raise TransportError("timeout", f"{url}: timed out after {self.timeout}s") from None
        except requests.ConnectionError as exc:
            raise TransportError("connection", f"{url}: connection failed ({exc.__class__.__name__})") from None
        return HttpAnswer(resp.status_code, resp.headers, content)

    def close(self) -> None:
        with self._lock:
            sessions, self.sessions = list(self.sessions.values()), {}
        for session in sessions:
            session.close()


def _read_body(resp: requests.Response) -> bytes:
    """The whole body in one read (requests' `.content` joins it from small chunks, slow for large
    answers); urllib3's failures reported as requests reports them, so callers see one set of exceptions."""
    try:
        content = resp.raw.read(decode_content=True)
    except urllib3.exceptions.ReadTimeoutError as exc:
        resp.close()
        raise requests.Timeout(str(exc)) from None
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        resp.close()
        raise requests.ConnectionError(str(exc)) from None
    resp.raw.release_conn()  # read to the end: the connection goes back to the pool for the next request
    return content or b""
