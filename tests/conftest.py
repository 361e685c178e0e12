"""Shared fixtures: the tiny world's model, trained once per test session."""

import pytest

import tiny_world


@pytest.fixture(scope="session")
def tiny_interactions():
    return tiny_world.interactions()


@pytest.fixture(scope="session")
def tiny_catalog(tiny_interactions):
    return tiny_world.catalog(tiny_interactions)


@pytest.fixture(scope="session")
def tiny_model(tiny_interactions, tiny_catalog):
    return tiny_world.train(tiny_interactions, tiny_catalog)


@pytest.fixture(scope="session")
def tiny_model_base(tiny_model, tmp_path_factory):
    """<serving_dir>/towergraph with version 1 of the tiny model, as the Pusher lays it out.

    Read-only for tests: one that adds versions copies it first.
    """
    base = tmp_path_factory.mktemp("serving") / tiny_world.MODEL_NAME
    tiny_world.export(tiny_model, base, version=1)
    return base
