"""The optional compiled build: hot modules compiled to C extensions with mypyc (issue 13).

Pure Python is the default and the reference: without ``APNSKIT_COMPILE=1`` in the environment
this hook does nothing and asks for nothing, so ``pip install -e .`` needs no compiler. With it,
``APNSKIT_COMPILE=1 pip install .`` builds a platform wheel in which the modules matched by
the ``compile`` globs of ``[tool.hatch.build.targets.wheel.hooks.custom]`` in pyproject.toml
are extension modules (the ``.py`` files stay beside them, as in any mypyc wheel; Python's
import system prefers the extension). Needs a C compiler and the Python headers (Debian:
``gcc``, ``python3-dev``); mypy, which carries mypyc, and setuptools come in as build
dependencies of this build only.
"""

from __future__ import annotations

import glob
import os
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

# The switch; anything but "1" builds the pure-Python wheel.
ENV_VAR = "APNSKIT_COMPILE"

# mypyc puts the code of all compiled modules in one shared library named after the group:
# "apnskit._compiled" makes it apnskit/_compiled__mypyc.*.so, inside the package rather than
# a hash-named file at the top of site-packages.
GROUP = "apnskit._compiled"

_SETUP = """\
import sys
from setuptools import setup
from mypyc.build import mypycify

setup(
    name="apnskit-compiled",
    ext_modules=mypycify(
        # Optional extras (socksio for SOCKS proxies) are not build requirements: a module
        # that imports one is not compiled and sees it as Any.
        ["--ignore-missing-imports", *sys.argv[3:]],
        opt_level="3",
        group_name={group!r},
        target_dir={target!r},
    ),
    script_args=["build_ext", "--build-lib", sys.argv[1], "--build-temp", sys.argv[2]],
)
"""


def _enabled() -> bool:
    return os.environ.get(ENV_VAR) == "1"


class CustomBuildHook(BuildHookInterface):
    """Compiles the configured modules with mypyc when ``APNSKIT_COMPILE=1``."""

    _tmp: tempfile.TemporaryDirectory[str] | None = None

    def dependencies(self) -> list[str]:
        """Build requirements of the compiled build only (none for the pure-Python one).

        mypyc type-checks the whole package as ``mypy --strict`` does, so the runtime
        dependencies (their type hints) are needed at build time too.
        """
        if not _enabled():
            return []
        return ["mypy>=1.11", "setuptools>=69", *self.metadata.core.dependencies]

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        """Compile into a temporary directory and add the extension modules to the wheel."""
        if not _enabled() or self.target_name != "wheel":
            return
        if version == "editable":
            # An editable install imports src/ in place; compiled modules there would shadow
            # the sources being edited. The compiled build is a regular install.
            msg = f"{ENV_VAR}=1 builds a regular wheel: use `pip install .`, not `pip install -e .`"
            raise RuntimeError(msg)
        # Kept until finalize(): hatchling adds the force-included files after this hook.
        self._tmp = tempfile.TemporaryDirectory(prefix="apnskit-mypyc-")
        out = self._compile(self._sources(), Path(self._tmp.name))
        suffix = sysconfig.get_config_var("EXT_SUFFIX")
        for built in out.rglob(f"*{suffix}"):
            build_data["force_include"][str(built)] = built.relative_to(out).as_posix()
        build_data["pure_python"] = False
        build_data["infer_tag"] = True

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        """Remove the temporary build directory once the wheel is written."""
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def _sources(self) -> list[str]:
        root = Path(self.root)
        sources = sorted(
            {
                Path(path).relative_to(root).as_posix()
                for pattern in self.config.get("compile", [])
                for path in glob.glob(str(root / pattern))
                if not path.endswith("__init__.py")
            }
        )
        if not sources:
            msg = "no module matches the `compile` globs of the mypyc build hook"
            raise RuntimeError(msg)
        return sources

    def _compile(self, sources: list[str], tmp: Path) -> Path:
        out = tmp / "lib"
        setup_py = tmp / "setup.py"
        setup_py.write_text(_SETUP.format(group=GROUP, target=str(tmp / "c")), encoding="utf-8")
        # cwd = the project: mypy reads [tool.mypy] from pyproject.toml and finds the package
        # under src/; its cache goes to the temporary directory.
        env = {**os.environ, "MYPY_CACHE_DIR": str(tmp / "mypy_cache")}
        result = subprocess.run(  # noqa: S603 (our own interpreter and file list)
            [sys.executable, str(setup_py), str(out), str(tmp / "temp"), *sources],
            cwd=self.root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            check=False,
        )
        if result.returncode:
            msg = f"mypyc failed ({ENV_VAR}=1):\n{result.stdout}"
            raise RuntimeError(msg)
        return out
