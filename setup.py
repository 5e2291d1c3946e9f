"""Copies templates/, firmware/ and datasets/ into the wheel as ditmos/_assets.

An editable install reads them from the checkout instead (ditmos/paths.py).
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ASSETS = ("templates", "firmware", "datasets")


class BuildWithAssets(build_py):
    def run(self):
        super().run()
        root = Path(__file__).resolve().parent
        target = Path(self.build_lib) / "ditmos" / "_assets"
        for name in ASSETS:
            src = root / name
            if src.is_dir():
                shutil.copytree(src, target / name, dirs_exist_ok=True,
                                ignore=shutil.ignore_patterns("__pycache__", "*.o", "*.elf"))


setup(cmdclass={"build_py": BuildWithAssets})
