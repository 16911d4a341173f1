"""Builds diskmeans' CPython extension, linked with the static library as
CMake builds it (the same compile flags as the CLI, so the same bits).

The package builds from this repository (it needs include/ and the CMake
project one folder up). The library comes from, in order:
  - DISKMEANS_BUILD_DIR: a CMake build folder of this repository that holds
    libdiskmeans.a (`make build` makes build/; `make test` passes it); a
    relative path is taken from the repository's root, since pip runs this
    file in python/;
  - otherwise this file's folder's parent is configured and built with CMake
    into python/build/cmake (Release, library only).
"""

import os
import re
import subprocess
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def library_version():
    text = (ROOT / "include" / "diskmeans.h").read_text()
    parts = [re.search(rf"#define DKM_VERSION_{p} (\d+)", text).group(1)
             for p in ("MAJOR", "MINOR", "PATCH")]
    return ".".join(parts)


def cmake_build_dir():
    given = os.environ.get("DISKMEANS_BUILD_DIR")
    if given:
        return (ROOT / given).resolve()
    build = HERE / "build" / "cmake"
    subprocess.check_call(["cmake", "-S", str(ROOT), "-B", str(build),
                           "-DCMAKE_BUILD_TYPE=Release", "-DDKM_BUILD_TESTS=OFF",
                           "-DDKM_BUILD_PROGRAMS=OFF", "-DDKM_BUILD_BENCH=OFF"])
    subprocess.check_call(["cmake", "--build", str(build), "--target", "diskmeans_static",
                           "-j", str(os.cpu_count() or 1)])
    return build


def cache_value(build, name):
    for line in (build / "CMakeCache.txt").read_text().splitlines():
        if line.startswith(name + ":"):
            return line.split("=", 1)[1]
    sys.exit(f"setup.py: {build}/CMakeCache.txt has no {name}")


class BuildWithLibrary(build_ext):
    """Finds (or builds) libdiskmeans.a before compiling the extension."""

    def run(self):
        build = cmake_build_dir()
        lib = build / "libdiskmeans.a"
        if not lib.is_file():
            sys.exit(f"setup.py: {lib} is missing: build the library first (make build)")
        build_type = cache_value(build, "CMAKE_BUILD_TYPE")
        if build_type != "Release":
            sys.exit(f"setup.py: {build} is a {build_type} build; the package links a "
                     "Release build, as the CLI uses")
        blas = cache_value(build, "DKM_BLAS_LIBRARY")
        blas_dir = cache_value(build, "DKM_OPENBLAS_SERIAL_DIR")
        for ext in self.extensions:
            ext.extra_objects = [str(lib)]
            # The serial OpenBLAS by path, with its folder in the run path (as
            # the shared library does): the threaded one would fight the
            # engine's threads. The library's own symbols stay inside.
            hdf5 = cache_value(build, "DKM_HDF5_LIBRARY").split(";")
            ext.extra_link_args = [blas, f"-Wl,-rpath,{blas_dir}", *hdf5, "-lz", "-lpthread",
                                   "-lm", "-Wl,--exclude-libs,ALL"]
            ext.depends = [str(lib)]
        super().run()


setup(
    name="diskmeans",
    version=library_version(),
    description="Exact, deterministic k-means for vector indexes, in memory or streamed from disk",
    packages=["diskmeans"],
    package_dir={"": "src"},
    package_data={"diskmeans": ["py.typed", "*.pyi"]},
    python_requires=">=3.9",
    install_requires=["numpy"],
    extras_require={"sklearn": ["scikit-learn"], "progress": ["tqdm"]},
    ext_modules=[Extension(
        "diskmeans._ext",
        sources=["src/diskmeans/_ext.c"],
        include_dirs=[str(ROOT / "include")],
        extra_compile_args=["-std=c11", "-Wall", "-Wextra", "-Wno-unused-parameter",
                            "-D_GNU_SOURCE"],
    )],
    cmdclass={"build_ext": BuildWithLibrary},
    zip_safe=False,
)
