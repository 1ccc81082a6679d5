"""Issue 13: the optional compiled build (mypyc) is really what a compiled test run imports,
and the default test run really is the pure-Python reference.

CI runs the suite twice (.ci/run): first on the editable pure-Python install, then on a wheel
built with ``APNSKIT_COMPILE=1`` and with ``APNSKIT_EXPECT_COMPILED=1`` set. This test holds in
both runs and fails if either run imports the other build.
"""

from __future__ import annotations

import importlib
import os
import sys
import sysconfig
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "apnskit"

# The `compile` globs of the mypyc build hook (pyproject.toml): every module of apnskit._core,
# and the engine's modules a notification passes through.
HOT_MODULES = sorted(
    [
        *(
            f"apnskit._core.{path.stem}"
            for path in (SRC / "_core").glob("*.py")
            if path.name != "__init__.py"
        ),
        "apnskit._engine.dispatcher",
        "apnskit._engine.pool",
        "apnskit._engine.tickets",
    ]
)

EXPECT_COMPILED = os.environ.get("APNSKIT_EXPECT_COMPILED", "")


def test_the_expectation_is_stated_plainly() -> None:
    # A typo ("true", "yes") must not quietly mean "pure Python".
    assert EXPECT_COMPILED in ("", "0", "1"), (
        f"APNSKIT_EXPECT_COMPILED must be 1 (compiled run), 0 or unset, not {EXPECT_COMPILED!r}"
    )


def test_the_hot_modules_are_found() -> None:
    assert {"apnskit._core.connection", "apnskit._core.hpack_codec", "apnskit._core.events"} <= set(
        HOT_MODULES
    )


@pytest.mark.parametrize("name", HOT_MODULES)
def test_the_run_imports_the_build_it_expects(name: str) -> None:
    module = importlib.import_module(name)
    path = module.__file__
    assert path is not None
    if EXPECT_COMPILED == "1":
        assert path.endswith(sysconfig.get_config_var("EXT_SUFFIX")), (
            f"{name} was imported from {path}: APNSKIT_EXPECT_COMPILED=1 but this is not the "
            "compiled build (APNSKIT_COMPILE=1 pip install .)"
        )
        # The code itself lives in the group's shared library that the build hook names.
        assert "apnskit._compiled__mypyc" in sys.modules
        # Outside the source tree: an editable install cannot carry the compiled modules.
        assert not Path(path).is_relative_to(SRC)
    else:
        assert path.endswith(".py"), (
            f"{name} was imported from {path}: this run should test the pure-Python reference "
            "(set APNSKIT_EXPECT_COMPILED=1 only for the compiled build)"
        )
        assert "apnskit._compiled__mypyc" not in sys.modules
