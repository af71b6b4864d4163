"""The domain speaks in outcomes: no HTTP status appears in the app's code outside http.py."""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
EDGE = ROOT / "chalicelib" / "http.py"


def _is_status(node) -> bool:
    return (isinstance(node, ast.Constant) and type(node.value) is int
            and 100 <= node.value <= 599)


def _names_status(node) -> bool:
    name = node.id if isinstance(node, ast.Name) else getattr(node, "attr", "")
    return "status" in name.lower()


def http_statuses(source: str) -> list[str]:
    """Where `source` uses an HTTP status: a (status, body) pair, a status compared, passed or
    defaulted by a name saying status, or an error built with one (`Refused(409, "Code", …)`)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Tuple) and node.elts and _is_status(node.elts[0]):
            found.append(node)
        elif isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            if any(map(_is_status, sides)) and any(map(_names_status, sides)):
                found.append(node)
        elif isinstance(node, ast.keyword) and node.arg and "status" in node.arg.lower():
            if _is_status(node.value):
                found.append(node)
        elif isinstance(node, ast.arguments):
            named = [*node.posonlyargs, *node.args]
            defaults = list(zip(named[len(named) - len(node.defaults):], node.defaults))
            defaults += [(a, d) for a, d in zip(node.kwonlyargs, node.kw_defaults) if d]
            found += [d for a, d in defaults if "status" in a.arg.lower() and _is_status(d)]
        elif isinstance(node, ast.Call) and len(node.args) >= 2 and _is_status(node.args[0]):
            if isinstance(node.args[1], (ast.Constant, ast.JoinedStr)):
                found.append(node)
    return [f"line {node.lineno}: {ast.unparse(node)[:80]}" for node in found]


@pytest.mark.parametrize("snippet", [
    "def start():\n    return 202, {}",
    "decision = 'acted' if status == 202 else 'recorded'",
    "if response.status_code >= 500: pass",
    "begin(incident, status=200)",
    "def begin(incident, status: int = 202): pass",
    "def begin(incident, *, status=202): pass",
    "raise Refused(409, 'NothingToRelease', 'message')",
    "raise Refused(503, 'NotConfigured', f'{name} is not set')",
])
def test_the_scan_finds_each_way_of_speaking_http(snippet):
    assert http_statuses(snippet)


@pytest.mark.parametrize("snippet", [
    "message = str(error)[:500]",
    "if cached[1] - time.time() > 300: pass",
    "START_GRACE_SECONDS = 120",
    "time.sleep(300)",
])
def test_the_scan_leaves_other_numbers_alone(snippet):
    assert http_statuses(snippet) == []


def test_no_http_status_outside_the_http_edge():
    files = [ROOT / "app.py", *sorted((ROOT / "chalicelib").rglob("*.py"))]
    found = {str(path.relative_to(ROOT)): http_statuses(path.read_text())
             for path in files if path != EDGE}
    assert {path: hits for path, hits in found.items() if hits} == {}
