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


# Modules whose tests run the TFX pipeline or a Beam job, a browser or the whole app, a notebook
# kernel, the lint and validation tools, or servers and CLIs in subprocesses: `make test` runs them, `make test-fast`
# (pytest -m "not slow") leaves them out. A module with both kinds marks its slow tests itself.
SLOW_MODULES = {
    "test_pipeline_e2e", "test_pipeline_movielens", "test_browser",
    "test_notebook", "test_k8s", "test_images", "test_vertex_image", "test_vertex_compile",
    "test_serve_cli", "test_data_output",
    "test_ui_app",                  # the whole Streamlit app per test (AppTest)
    "test_trainer_preprocessing",   # a real tf.Transform Beam run
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.module.__name__ in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def cold_world(tiny_interactions, tmp_path_factory):
    """The tiny world with items 30..39 cold (tests/test_cold_start.py build_cold_world)."""
    from test_cold_start import build_cold_world

    return build_cold_world(tiny_interactions, tmp_path_factory)
