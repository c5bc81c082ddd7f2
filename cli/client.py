"""A small Python client for the backprop HTTP API (standard library only).

from cli.client import Client
api = Client("http://127.0.0.1:8000", "bp_...")
job = api.submit(network, {"epochs": 100}, dataset_id=1)
for event in api.follow(job["id"]):
    ...

An error answer of the API raises ClientError; no answer of the API at all
raises Unreachable.
"""

from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

FINAL = ("succeeded", "failed", "cancelled")

# The Content-Type of a table file, by its extension; other files go as CSV.
TABLE_TYPES = {
    ".parquet": "application/vnd.apache.parquet",
    ".pq": "application/vnd.apache.parquet",
    ".tsv": "text/tab-separated-values",
    ".tab": "text/tab-separated-values",
    ".csv": "text/csv",
}


class ClientError(Exception):
    """An error answer of the API, with its status, code, message and field."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        where = f" ({field})" if field else ""
        super().__init__(f"{status} {code}: {message}{where}")
        self.status, self.code, self.message, self.field = status, code, message, field


class Unreachable(Exception):
    """No answer of the API: nothing listens at the URL, the connection broke, or some
    other server answered."""


class Client:
    def __init__(self, url: str, api_key: str | None, timeout: float = 60.0) -> None:
        parts = urllib.parse.urlsplit(url)
        # urllib would read "localhost:8000" as scheme "localhost"; say what is missing instead.
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"the URL {url!r} needs http:// or https:// and a host")
        self.url = url.rstrip("/")
        self.api_key = api_key
        self.timeout = timeout

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        data: bytes | None = None,
        content_type: str = "application/json",
    ) -> Any:
        """The parsed JSON answer; raises :class:`ClientError` for an error answer."""
        payload = data if data is not None else None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=payload, method=method)
        request.add_header("Content-Type", content_type)
        if self.api_key:
            request.add_header("Authorization", f"Bearer {self.api_key}")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as error:
            raw = error.read()
            try:
                detail = json.loads(raw)["error"]
            except (ValueError, KeyError, TypeError):
                # Not the API's error shape: another server, or a proxy in between.
                detail = {"code": "http_error", "message": f"{error.reason} (not an API error)"}
            raise ClientError(
                error.code, detail["code"], detail["message"], detail.get("field")
            ) from None
        except urllib.error.URLError as error:
            raise Unreachable(f"no service at {self.url} ({error.reason})") from None
        except (http.client.HTTPException, OSError) as error:
            raise Unreachable(f"no answer from {self.url} ({error!r})") from None
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            # Some other server holds the port: its page is no answer of this API.
            raise Unreachable(f"{self.url} answered, but not with JSON") from None

    # --- datasets -------------------------------------------------------------

    def upload_csv(self, path: str | Path, name: str, targets: list[str]) -> dict[str, Any]:
        return self.upload_file(path, name, targets)

    def upload_file(
        self,
        path: str | Path,
        name: str,
        targets: list[str],
        *,
        task: str | None = None,
        categorical: list[str] | None = None,
        ignore: list[str] | None = None,
        delimiter: str | None = None,
        decimal: str | None = None,
        charset: str | None = None,
    ) -> dict[str, Any]:
        """Store a table file as a dataset: Parquet, tab-separated or CSV, told apart by
        the file's extension (anything else is CSV). ``charset`` names a text file's
        encoding (UTF-8 unless told); the reading options are the API's query parameters.
        """
        path = Path(path)
        content_type = TABLE_TYPES.get(path.suffix.lower(), "text/csv")
        if charset and content_type.startswith("text/"):
            content_type += f"; charset={charset}"
        options = {
            "name": name,
            "target": ",".join(targets),
            "task": task,
            "categorical": ",".join(categorical or []) or None,
            "ignore": ",".join(ignore or []) or None,
            "delimiter": delimiter,
            "decimal": decimal,
        }
        query = urllib.parse.urlencode({k: v for k, v in options.items() if v is not None})
        answer: dict[str, Any] = self.request(
            "POST", f"/datasets?{query}", data=path.read_bytes(), content_type=content_type
        )
        return answer

    def dataset(self, dataset_id: int) -> dict[str, Any]:
        return self.request("GET", f"/datasets/{dataset_id}")  # type: ignore[no-any-return]

    def datasets(self, limit: int = 50) -> list[dict[str, Any]]:
        return self.request("GET", f"/datasets?limit={limit}")["datasets"]  # type: ignore[no-any-return]

    def upload(self, inputs: list[list[float]], targets: list[Any], name: str) -> dict[str, Any]:
        answer: dict[str, Any] = self.request(
            "POST", "/datasets", {"name": name, "inputs": inputs, "targets": targets}
        )
        return answer

    # --- jobs -------------------------------------------------------------------

    def submit(
        self,
        network: dict[str, Any],
        training: dict[str, Any],
        *,
        dataset_id: int | None = None,
        dataset: dict[str, Any] | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        """POST /jobs; ``fields``: the body's other fields (``init_from_model``), sent
        as they are for the API to check."""
        body: dict[str, Any] = {"network": network, "training": training, **fields}
        if dataset_id is not None:
            body["dataset_id"] = dataset_id
        if dataset is not None:
            body["dataset"] = dataset
        return self.request("POST", "/jobs", body)  # type: ignore[no-any-return]

    def job(self, job_id: int) -> dict[str, Any]:
        return self.request("GET", f"/jobs/{job_id}")  # type: ignore[no-any-return]

    def jobs(self, status: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        query = urllib.parse.urlencode({"limit": limit, **({"status": status} if status else {})})
        return self.request("GET", f"/jobs?{query}")["jobs"]  # type: ignore[no-any-return]

    def epochs(self, job_id: int, after: int = 0, limit: int = 1000) -> dict[str, Any]:
        return self.request("GET", f"/jobs/{job_id}/epochs?after={after}&limit={limit}")  # type: ignore[no-any-return]

    def cancel(self, job_id: int) -> dict[str, Any]:
        return self.request("POST", f"/jobs/{job_id}/cancel")  # type: ignore[no-any-return]

    def follow(self, job_id: int, poll: float = 0.3) -> Iterator[dict[str, Any]]:
        """Yield ``{"epoch": ...}`` for each new epoch, then ``{"job": ...}`` once it ends."""
        after = 0
        while True:
            job = self.job(job_id)
            while True:
                page = self.epochs(job_id, after=after)
                for epoch in page["epochs"]:
                    yield {"epoch": epoch, "job": job}
                    after = epoch["epoch"]
                if page["next_after"] is None:
                    break
            if job["status"] in FINAL:
                yield {"job": job}
                return
            time.sleep(poll)

    # --- models -----------------------------------------------------------------

    def model(self, model_id: int) -> dict[str, Any]:
        return self.request("GET", f"/models/{model_id}")  # type: ignore[no-any-return]

    def predict(self, model_id: int, inputs: list[list[float]]) -> dict[str, Any]:
        """Outputs (and labels) for rows given in the model's column order."""
        return self.request("POST", f"/models/{model_id}/predict", {"inputs": inputs})  # type: ignore[no-any-return]

    def predict_csv(
        self,
        model_id: int,
        data: bytes,
        header: str | None = None,
        content_type: str = "text/csv",
    ) -> dict[str, Any]:
        """Outputs (and labels) for the rows of a table body (CSV by default, or the
        ``content_type`` of a tab-separated or Parquet file); a header's columns are
        matched by name.

        ``header`` ("present" or "absent") settles a first row the service cannot tell.
        """
        query = "" if header is None else "?" + urllib.parse.urlencode({"header": header})
        return self.request(  # type: ignore[no-any-return]
            "POST", f"/models/{model_id}/predict{query}", data=data, content_type=content_type
        )
