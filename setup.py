"""Build the Cython kernels in src/_core/ as the subpackage maskdec._core."""
import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

DIRECTIVES = {
    "language_level": "3",
    "boundscheck": False,
    "wraparound": False,
    "initializedcheck": False,
    "cdivision": True,
}


def kernels_extension() -> Extension:
    return Extension(
        "maskdec._core.kernels",
        sources=["src/_core/kernels.pyx"],
        include_dirs=[numpy.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=["-O3"],
    )


def tables_extension() -> Extension:
    return Extension(
        "maskdec._core.tables",
        sources=["src/_core/tables.pyx"],
        include_dirs=[numpy.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=["-O3"],
    )


setup(ext_modules=cythonize([kernels_extension(), tables_extension()], compiler_directives=DIRECTIVES))
