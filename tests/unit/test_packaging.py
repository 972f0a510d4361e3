"""setup.cfg's package discovery: every folder below the packages is a package setuptools is told
about (else it warns "Package would be ignored" for each, ~70 lines at `make install`), and the
bundled sample data is package data."""
from __future__ import annotations

import configparser

import pytest
import setuptools

from tests.conftest import ROOT

pytestmark = pytest.mark.unit

CFG = configparser.ConfigParser()
CFG.read(ROOT / "setup.cfg")


def _lines(section: str, key: str) -> list[str]:
    return [v.strip() for v in CFG.get(section, key, fallback="").splitlines() if v.strip()]


def _discovered() -> set[str]:
    find = {"find:": setuptools.find_packages, "find_namespace:": setuptools.find_namespace_packages}
    how = CFG.get("options", "packages").strip()
    assert how in find, f"setup.cfg packages = {how}: this test knows find: and find_namespace:"
    return set(find[how](where=str(ROOT), include=_lines("options.packages.find", "include"),
                         exclude=_lines("options.packages.find", "exclude")))


def test_every_folder_of_the_packages_is_a_declared_package():
    roots = {name for name in _lines("options.packages.find", "include") if "*" not in name}
    assert roots == {"common", "api", "ingest_worker", "resolve_worker", "embed_worker"}
    folders = {".".join(path.relative_to(ROOT).parts) for root in roots
               for path in [ROOT / root, *(ROOT / root).rglob("*")]
               if path.is_dir() and path.name != "__pycache__" and "__pycache__" not in path.parts}
    assert "common.sample_data.gong" in folders
    found = _discovered()
    assert folders - found == set(), "importable folders setuptools would warn about"
    assert found - folders == set()


def test_the_sample_data_files_are_package_data():
    patterns = [p.strip() for p in CFG.get("options.package_data", "common").split(",")]
    files = {p.relative_to(ROOT / "common") for p in (ROOT / "common" / "sample_data").rglob("*") if p.is_file()}
    covered = {f for f in files if any(f.match(pattern) and len(f.parts) == len(pattern.split("/"))
                                       for pattern in patterns)}
    assert files and covered == files
