"""The package is imported from its installed copy, with its stubs."""

import os
from pathlib import Path

import diskmeans


def test_imported_from_the_installed_copy_not_the_source_tree():
    here = Path(__file__).resolve().parent.parent  # the source folder python/
    installed = Path(diskmeans.__file__).resolve().parent
    assert here not in installed.parents, installed
    assert "site-packages" in installed.parts


def test_installed_copy_has_the_extension_stubs_and_py_typed():
    folder = Path(diskmeans.__file__).parent
    names = os.listdir(folder)
    assert "py.typed" in names
    assert "_ext.pyi" in names
    assert any(n.startswith("_ext") and n.endswith(".so") for n in names)


def test_version_is_the_library_version():
    assert diskmeans.__version__ == diskmeans.library_version
    assert diskmeans.__version__.count(".") == 2
