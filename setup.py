"""Build step that ships edgeskd-startup.pth (everything else is declared in pyproject.toml).

The .pth file makes the interpreter import _edgeskd_startup at start-up, so `import timm` works in any environment
edgeskd is installed in (see _edgeskd_startup.py). A wheel puts it in site-packages through build_lib; an editable
install (pip install -e) builds no package files, so there it is written into the editable wheel's root instead.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

PTH_NAME = "edgeskd-startup.pth"
PTH_LINE = "import _edgeskd_startup\n"


class BuildPyWithStartupHook(build_py):
    def run(self) -> None:
        super().run()
        for directory in self._pth_dirs():
            path = Path(directory, PTH_NAME)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(PTH_LINE, encoding="utf-8")

    def _pth_dirs(self) -> list[str]:
        if getattr(self, "editable_mode", False):
            # editable_wheel points install_lib at the unpacked editable wheel; files there land in site-packages
            return [self.get_finalized_command("install").install_lib]
        return [self.build_lib]

    def get_outputs(self, include_bytecode=True):
        return [*super().get_outputs(include_bytecode), *(str(Path(d, PTH_NAME)) for d in self._pth_dirs())]


setup(cmdclass={"build_py": BuildPyWithStartupHook})
