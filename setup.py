"""Packaging for TowerGraph.

The TFX 1.16 stack declares Requires-Python <3.11 although every compiled piece has cp311 wheels,
so `make install` installs the pinned lock (requirements/lock.txt) with --no-deps and then this
project with --no-deps. install_requires below documents the direct dependencies.
"""

from setuptools import find_packages, setup

setup(
    name="towergraph",
    version="0.1.0",
    description="Train a TFRS two-tower recommender with TFX, serve it with TF Serving, "
    "explore it as a multi-hop similarity graph.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10,<3.12",
    packages=find_packages(include=["towergraph", "towergraph.*", "pipeline", "pipeline.*",
                                    "trainer", "trainer.*", "serving", "serving.*", "ui", "ui.*"]),
    include_package_data=True,
    install_requires=[
        "tfx[kfp]==1.16.0",
        "tensorflow==2.16.2",
        "tf-keras==2.16.0",
        "tensorflow-recommenders==0.7.3",
        "tensorflow-transform==1.16.0",
        "tensorflow-serving-api==2.16.1",
        "dill==0.3.1.1",
        "pandas",
        "pyyaml",
        "requests",
        "networkx",
        "pyvis",
        "streamlit",
    ],
    entry_points={"console_scripts": ["towergraph=towergraph.cli:main"]},
)
