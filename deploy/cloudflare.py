"""The Cloudflare REST calls deploy needs (catalog, finetunes, assets), over plain httpx, with the
harness's retry rules, error table and redaction. Envelopes are parsed defensively: `result` shapes vary."""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import httpx

from harness.backends.base import BackendError
from harness.backends.http import RequestFailed, RetryPolicy, Secret, check_base_url, env_secret, redact_secrets, request_sync
from harness.backends.remote import CLOUDFLARE_API, classify_cloudflare


def _items(result: Any, *keys: str) -> list[dict[str, Any]]:
    """A list of records from a `result` that may be a list, or a dict holding one under some key."""
    if isinstance(result, list):
        return [r for r in result if isinstance(r, dict)]
    if isinstance(result, dict):
        for key in keys:
            if isinstance(result.get(key), list):
                return [r for r in result[key] if isinstance(r, dict)]
    return []


def is_lora_capable(model: dict[str, Any]) -> bool:
    """The catalog marks LoRA support as a property ({"property_id": "lora", "value": "true"})."""
    for prop in model.get("properties") or []:
        if isinstance(prop, dict) and str(prop.get("property_id", "")).lower() == "lora":
            return str(prop.get("value", "")).lower() in ("true", "1", "yes")
    return bool(model.get("lora") is True)


class CloudflareAPI:
    def __init__(self, account_id: str, token: Secret, *, api_base: str = CLOUDFLARE_API,
                 retry: RetryPolicy = RetryPolicy(), transport: httpx.BaseTransport | None = None) -> None:
        self.account_id, self.token, self.retry = account_id, token, retry
        self.url_password = check_base_url(api_base, "--cf-api-base", own_auth=True)
        self.base = f"{api_base.rstrip('/')}/accounts/{account_id}/ai"
        self.client = httpx.Client(headers={"Authorization": f"Bearer {token.reveal()}"}, timeout=retry.timeout_s,
                                   transport=transport)

    @classmethod
    def from_env(cls, api_base: str | None = None, **kwargs: Any) -> "CloudflareAPI":
        if not os.environ.get("CLOUDFLARE_ACCOUNT_ID") or not os.environ.get("CLOUDFLARE_API_TOKEN"):
            raise BackendError("set CLOUDFLARE_ACCOUNT_ID and CLOUDFLARE_API_TOKEN (a token with Workers AI edit rights)")
        account = env_secret("CLOUDFLARE_ACCOUNT_ID", "deploy").reveal()
        return cls(account, env_secret("CLOUDFLARE_API_TOKEN", "deploy"), api_base=api_base or CLOUDFLARE_API, **kwargs)

    def redact(self, text: str) -> str:
        """The token and the account id, and any 6-character run of them, become ***."""
        return redact_secrets(text, [self.token, Secret(self.account_id), self.url_password])

    def _call(self, method: str, path: str, retry: RetryPolicy | None = None, **kwargs: Any) -> Any:
        body = request_sync(self.client, method, self.base + path, classify=classify_cloudflare, redact=self.redact,
                            retry=retry or self.retry, **kwargs)
        return body.get("result") if isinstance(body, dict) else body

    def search_models(self, search: str) -> list[dict[str, Any]]:
        return _items(self._call("GET", "/models/search", params={"search": search}), "models", "items")

    def list_finetunes(self) -> list[dict[str, Any]]:
        return _items(self._call("GET", "/finetunes"), "finetunes", "items")

    def create_finetune(self, model: str, name: str, description: str) -> dict[str, Any]:
        """Create once, never blindly again: a create whose reply was lost (a reset, a timeout, a 5xx) may have
        happened, and a retry would make a second finetune or fail as "exists". After such a failure the name
        is looked up; what exists is returned with `recovered_after` saying why."""
        once = dataclasses.replace(self.retry, max_attempts=1)
        try:
            result = self._call("POST", "/finetunes", retry=once,
                                json={"model": model, "name": name, "description": description})
        except RequestFailed as exc:
            found = next((f for f in self.list_finetunes() if f.get("name") == name and f.get("id")), None)
            if found is None:
                raise
            return {**found, "recovered_after": str(exc)}
        if isinstance(result, dict) and isinstance(result.get("finetune"), dict):
            result = result["finetune"]
        if not isinstance(result, dict) or not result.get("id"):
            raise BackendError(self.redact(f"creating finetune {name!r}: the reply has no id ({str(result)[:200]})"))
        return result

    def upload_asset(self, finetune_id: str, path: Path) -> Any:
        content = path.read_bytes()  # bytes, not a handle: a retried request must send the whole file again
        return self._call("POST", f"/finetunes/{finetune_id}/finetune-assets",
                          data={"file_name": path.name}, files={"file": (path.name, content, "application/octet-stream")})

    def close(self) -> None:
        self.client.close()
