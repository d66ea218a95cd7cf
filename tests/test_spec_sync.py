"""The packaged tools.json must be the spec's, byte for byte."""
import json
from pathlib import Path

import pytest

from harness.tools import DEFAULT_TOOLS_PATH

SPEC = Path(__file__).resolve().parents[2] / "shared" / "spec" / "tools.json"


@pytest.mark.skipif(not SPEC.exists(), reason="the shared spec folder is not beside this checkout")
def test_packaged_catalogue_is_the_spec():
    assert json.loads(DEFAULT_TOOLS_PATH.read_text()) == json.loads(SPEC.read_text())


def test_catalogue_has_the_ten_tools(catalogue):
    assert len(catalogue.names) == 10 and "createTask" in catalogue and "createCalendarEvent" in catalogue
