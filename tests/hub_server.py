"""A small Hugging Face hub on 127.0.0.1: the endpoints ``huggingface_hub`` calls with ``HF_ENDPOINT`` set.

Serves a folder as repo ``{repo}`` at one commit: ``/api/models/{repo}/revision/{rev}`` (sha, siblings),
``/api/models/{repo}/tree/{rev}`` (size, git blob id, LFS sha256/size), and ``/{repo}/resolve/{rev}/{file}`` with
``X-Repo-Commit``, ``ETag`` / ``X-Linked-Etag`` / ``X-Linked-Size`` and Range requests. ``truncate_first`` makes the
first GET of each LFS file stop half-way (a dropped connection) so resuming is exercised for real; ``stall_first``
sends that half and then holds the connection open until the event is set, so a test can kill the fetching process
mid-file (what an SSH drop or Ctrl-C does) and check that the next process continues with a Range request.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse

LFS_SUFFIXES = (".safetensors", ".bin")


@dataclass
class HubFile:
    data: bytes
    blob_id: str
    sha256: str | None


@dataclass
class FakeHub:
    repo: str
    files: dict[str, HubFile]
    commit: str
    truncate_first: bool = False
    stall_first: threading.Event | None = None
    requests: list[tuple[str, str, str]] = field(default_factory=list)  # (method, path, Range header)
    truncated: set[str] = field(default_factory=set)

    @classmethod
    def from_folder(cls, repo: str, folder: Path, **kwargs: object) -> FakeHub:
        files = {}
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            data = path.read_bytes()
            blob = hashlib.sha1(f"blob {len(data)}\0".encode() + data).hexdigest()  # noqa: S324
            lfs = hashlib.sha256(data).hexdigest() if path.suffix in LFS_SUFFIXES else None
            files[path.relative_to(folder).as_posix()] = HubFile(data, blob, lfs)
        commit = hashlib.sha1(b"".join(f.blob_id.encode() for f in files.values())).hexdigest()  # noqa: S324
        return cls(repo, files, commit, **kwargs)  # type: ignore[arg-type]

    def tree(self) -> list[dict]:
        rows = []
        for name, f in self.files.items():
            row: dict = {"type": "file", "path": name, "size": len(f.data), "oid": f.blob_id}
            if f.sha256:
                row["lfs"] = {"oid": f.sha256, "size": len(f.data), "pointerSize": 134}
            rows.append(row)
        return rows


def _handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:  # keep pytest output clean
            pass

        def _json(self, body: object, status: int = 200) -> None:
            raw = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(raw)

        def _route(self) -> None:
            path = unquote(urlparse(self.path).path)
            hub.requests.append((self.command, path, self.headers.get("Range", "")))
            api = f"/api/models/{hub.repo}/"
            if path.startswith(api + "revision/"):
                return self._json({"id": hub.repo, "sha": hub.commit,
                                   "siblings": [{"rfilename": n} for n in hub.files]})
            if path.startswith(api + "tree/"):
                return self._json(hub.tree())
            prefix = f"/{hub.repo}/resolve/"
            if path.startswith(prefix):
                _, _, name = path[len(prefix):].partition("/")
                if name in hub.files:
                    return self._file(name, hub.files[name])
            return self._json({"error": "Repository not found"}, 404)

        def _file(self, name: str, f: HubFile) -> None:
            start = 0
            ranged = self.headers.get("Range", "")
            if ranged.startswith("bytes="):
                start = int(ranged[6:].split("-")[0] or 0)
            body = f.data[start:]
            self.send_response(206 if start else 200)
            self.send_header("X-Repo-Commit", hub.commit)
            self.send_header("Content-Length", str(len(body)))
            if start:
                self.send_header("Content-Range", f"bytes {start}-{len(f.data) - 1}/{len(f.data)}")
            if f.sha256:
                self.send_header("X-Linked-Etag", f'"{f.sha256}"')
                self.send_header("X-Linked-Size", str(len(f.data)))
            self.send_header("ETag", f'"{f.sha256 or f.blob_id}"')
            self.end_headers()
            if self.command == "HEAD":
                return
            if (hub.truncate_first or hub.stall_first) and f.sha256 and name not in hub.truncated:
                hub.truncated.add(name)  # send half, then drop the connection like a flaky network
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                if hub.stall_first is not None:
                    hub.stall_first.wait(30)
                self.close_connection = True
                return
            self.wfile.write(body)

        do_GET = _route
        do_HEAD = _route

    return Handler


def serve(hub: FakeHub) -> tuple[ThreadingHTTPServer, str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(hub))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"
