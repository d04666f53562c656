"""Packaging for statefun-wsgi. Tool settings live in pyproject.toml."""

from __future__ import annotations

import pathlib

from setuptools import find_packages, setup

HERE = pathlib.Path(__file__).parent

setup(
    name="statefun-wsgi",
    version="0.1.0",
    description="Apache Flink Stateful Functions (2.x remote functions) in any WSGI app, served by gunicorn",
    long_description=(HERE / "README.md").read_text(encoding="utf-8") if (HERE / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.9",
    packages=find_packages(include=["statefun_wsgi", "statefun_wsgi.*"]),
    package_data={"statefun_wsgi": ["py.typed", "_proto/*.proto", "_proto/*.pyi"]},
    install_requires=[
        "protobuf>=4.25,<8",
        "werkzeug>=2.3",
        "gunicorn>=23.0",
        "PyYAML>=6.0",
    ],
    extras_require={
        "django": ["Django>=4.2"],
        "flask": ["Flask>=2.3"],
        "pyramid": ["pyramid>=2.0"],
        "metrics": ["prometheus_client>=0.17"],
        "test": [
            "pytest>=7.4",
            "Django>=4.2",
            "Flask>=2.3",
            "pyramid>=2.0",
            "WebTest>=3.0",
            "hypothesis>=6.80",
            "aiohttp>=3.9",  # tests/test_docs_v3.py: the official docs' aiohttp host on statefun_wsgi.v3
            "prometheus_client>=0.17",
        ],
        "bench": [],
    },
    entry_points={"console_scripts": ["statefun-wsgi = statefun_wsgi.cli:main"]},
    classifiers=[
        "Framework :: Django",
        "Framework :: Flask",
        "Framework :: Pyramid",
        "Programming Language :: Python :: 3",
        "Topic :: Internet :: WWW/HTTP :: WSGI :: Middleware",
        "Typing :: Typed",
    ],
)
