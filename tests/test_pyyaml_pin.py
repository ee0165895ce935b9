"""reconcile/desired/yaml12.py overrides private methods of PyYAML's pure-Python scanner and composer,
and reads their private state: PyYAML is pinned `<7` (pyproject.toml), and this test fails loudly
when a PyYAML inside the pin changes what the overrides rely on. When it fails, read the new
PyYAML's scanner.py and composer.py against yaml12.py before changing anything here."""

from __future__ import annotations

import inspect
import re
import tomllib
from pathlib import Path

import pytest
import yaml
import yaml.composer
import yaml.reader
import yaml.resolver
import yaml.scanner

from reconcile.desired import yaml12

ROOT = Path(__file__).resolve().parents[1]

# Every PyYAML method yaml12 overrides or calls on its bases, with the signature it was written against.
RELIED_ON: dict[tuple[type, str], str] = {
    (yaml.scanner.Scanner, "scan_to_next_token"): "(self)",
    (yaml.scanner.Scanner, "add_indent"): "(self, column)",
    (yaml.scanner.Scanner, "stale_possible_simple_keys"): "(self)",
    (yaml.scanner.Scanner, "check_key"): "(self)",
    (yaml.scanner.Scanner, "check_value"): "(self)",
    (yaml.scanner.Scanner, "check_plain"): "(self)",
    (yaml.scanner.Scanner, "fetch_flow_scalar"): "(self, style)",
    (yaml.scanner.Scanner, "fetch_flow_collection_end"): "(self, TokenClass)",
    (yaml.scanner.Scanner, "scan_directive"): "(self)",
    (yaml.scanner.Scanner, "scan_anchor"): "(self, TokenClass)",
    (yaml.scanner.Scanner, "scan_plain"): "(self)",
    (yaml.scanner.Scanner, "scan_plain_spaces"): "(self, indent, start_mark)",
    (yaml.scanner.Scanner, "scan_line_break"): "(self)",
    (yaml.reader.Reader, "peek"): "(self, index=0)",
    (yaml.reader.Reader, "prefix"): "(self, length=1)",
    (yaml.reader.Reader, "forward"): "(self, length=1)",
    (yaml.reader.Reader, "get_mark"): "(self)",
    (yaml.composer.Composer, "compose_node"): "(self, parent, index)",
    (yaml.composer.Composer, "compose_scalar_node"): "(self, anchor)",
    (yaml.resolver.BaseResolver, "resolve"): "(self, kind, value, implicit)",
}
# The private state the overrides read or write, on a loader that has read a document.
STATE = (
    "buffer", "pointer", "index", "line", "column", "name",  # Reader
    "tokens", "tokens_taken", "flow_level", "allow_simple_key", "possible_simple_keys", "indent",  # Scanner
    "anchors",  # Composer
)  # fmt: skip
SIMPLE_KEY_FIELDS = ("token_number", "required", "index", "line", "column", "mark")  # possible_simple_keys' values


def test_pyyaml_is_pinned_below_7() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    (requirement,) = [d for d in project["dependencies"] if re.match(r"pyyaml\b", d, re.IGNORECASE)]
    assert "<7" in requirement.replace(" ", ""), requirement
    assert int(yaml.__version__.split(".")[0]) < 7, yaml.__version__


@pytest.mark.parametrize(("base", "name"), list(RELIED_ON), ids=[f"{b.__name__}.{n}" for b, n in RELIED_ON])
def test_every_pyyaml_method_yaml12_relies_on_keeps_its_shape(base: type, name: str) -> None:
    method = getattr(base, name, None)
    assert callable(method), f"PyYAML {yaml.__version__}: {base.__name__}.{name} is gone; yaml12.py relies on it"
    signature = str(inspect.signature(method))
    assert signature == RELIED_ON[base, name], (
        f"PyYAML {yaml.__version__}: {base.__name__}.{name}{signature}, "
        f"yaml12.py was written against {name}{RELIED_ON[base, name]}"
    )


def test_pyyaml_still_calls_every_method_yaml12_overrides() -> None:
    """An override PyYAML no longer calls would do nothing, silently."""
    source = "".join(inspect.getsource(module) for module in (yaml.scanner, yaml.parser, yaml.composer))
    for ours in (yaml12.Scanner12, yaml12.Composer12, yaml12.CoreResolver):
        for name, value in vars(ours).items():
            if not callable(value) or name.startswith("_"):
                continue
            bases = [base for (base, method) in RELIED_ON if method == name]
            assert bases, f"{ours.__name__}.{name} overrides nothing RELIED_ON lists: add it there"
            calls = len(re.findall(rf"\bself\.{name}\(", source))
            assert calls >= 1, f"PyYAML {yaml.__version__} no longer calls {name}: {ours.__name__}'s override is dead"


def test_the_private_state_yaml12_reads_is_still_there() -> None:
    loader = yaml12.Loader12("a: {b: [1, 2]}\nc: &x d\ne: *x\n")
    state: dict[str, object] = {}

    class Watching(yaml12.Loader12):
        def stale_possible_simple_keys(self) -> None:
            state.update({name: getattr(self, name) for name in STATE if hasattr(self, name)})
            keys = list(self.possible_simple_keys.values())
            if keys:
                state["simple key"] = keys[0]
            super().stale_possible_simple_keys()

    assert loader.get_single_node() is not None
    assert Watching("a: {b: [1, 2]}\n").get_single_node() is not None
    missing = [name for name in STATE if name not in state and not hasattr(loader, name)]
    assert not missing, f"PyYAML {yaml.__version__}: no {missing} on the loader; yaml12.py reads them"
    key = state.get("simple key")
    assert key is not None, "no possible simple key was ever recorded while scanning `a: ...`"
    assert all(hasattr(key, field) for field in SIMPLE_KEY_FIELDS), vars(key)


def test_libyaml_parser_is_there_as_yaml12_imports_it() -> None:
    """Without it every file goes through the pure-Python scanner: right, but 7x slower (bench, scenario 5)."""
    from yaml._yaml import CParser  # noqa: PLC0415

    assert yaml12._FAST and issubclass(yaml12._FAST[0], CParser)
