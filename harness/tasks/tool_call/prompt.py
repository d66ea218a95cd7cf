"""The ONE system-prompt builder. Training data imports it too, so train and eval prompts are byte-identical.
The words are the suite's (a template file); this module only fills in the date and the tools."""
from __future__ import annotations

import json
from datetime import datetime, timedelta
from importlib import resources
from pathlib import Path

from harness.tasks.tool_call.cases import Case
from harness.tasks.tool_call.tools import Catalogue

PROMPTS = Path(str(resources.files("harness") / "spec" / "prompts"))


def read_template(path: str | Path) -> str:
    """A prompt template file: text with `{date}` (weekday, date, time and time zone) and `{tools}` (each tool's
    description and JSON Schema) filled in per conversation. Trailing line breaks are not part of it."""
    text = Path(path).read_text(encoding="utf-8").rstrip("\n")
    missing = [p for p in ("{date}", "{tools}") if p not in text]
    if missing:
        raise ValueError(f"{path}: a prompt template needs {' and '.join(missing)}")
    return text


def time_zone_name(now: datetime) -> str:
    offset = now.utcoffset() or timedelta(0)
    if offset == timedelta(0):
        return "UTC"
    sign = "-" if offset < timedelta(0) else "+"
    minutes = abs(int(offset.total_seconds())) // 60
    return f"UTC{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def build_system_prompt(now: datetime, catalogue: Catalogue, template: str) -> str:
    """The system prompt for a conversation happening at `now` (aware datetime): the suite's `template` with
    the date and `catalogue`'s tools filled in."""
    date = f"{now.strftime('%A')}, {now.strftime('%Y-%m-%d %H:%M')} (time zone: {time_zone_name(now)})"
    return template.replace("{date}", date).replace("{tools}", _tools_section(catalogue))


_SECTIONS: dict[int, tuple[Catalogue, str]] = {}


def _tools_section(catalogue: Catalogue) -> str:
    """Each tool's summary and schema; rendered once per catalogue (a 10k-case run builds 10k prompts)."""
    hit = _SECTIONS.get(id(catalogue))
    if hit is not None and hit[0] is catalogue:
        return hit[1]
    lines = []
    for tool in catalogue.tools:
        schema = json.dumps(tool.params_schema, separators=(",", ":"), ensure_ascii=False)
        lines += [f"### {tool.name}", tool.summary, f"params (JSON Schema): {schema}", ""]
    _SECTIONS[id(catalogue)] = (catalogue, "\n".join(lines))
    return _SECTIONS[id(catalogue)][1]


def build_messages(case: Case, catalogue: Catalogue, template: str) -> list[dict[str, str]]:
    """The full message list a backend sees: the system prompt first, then the case's conversation."""
    return [{"role": "system", "content": build_system_prompt(case.now, case.catalogue(catalogue), template)}] + [
        dict(m) for m in case.messages
    ]
