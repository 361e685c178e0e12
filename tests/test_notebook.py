"""notebooks/explore.ipynb runs top to bottom (nbclient, a real kernel) against the TF Serving
stand-in on the tiny world's model, started in this process; the endpoint cell reads its
address from TOWERGRAPH_SERVER."""

import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

import tiny_world
from serving.client import TowerGraphClient
from serving.standin import serve_in_process

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "explore.ipynb"


@pytest.fixture(scope="module")
def standin(tiny_model_base):
    with serve_in_process(tiny_model_base, tiny_world.MODEL_NAME, grpc_port=None,
                          poll_seconds=0) as server:
        yield server


def outputs(cell, mime):
    found = []
    for output in cell.get("outputs", []):
        if output.output_type == "stream" and mime == "text/plain":
            found.append(output.text)
        elif output.output_type in ("execute_result", "display_data") and mime in output.data:
            found.append(output.data[mime])
    return "".join(found)


def test_notebook_is_clean_and_ready_for_colab():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    assert notebook.metadata.kernelspec.name == "python3"
    assert all(not cell.get("outputs") and not cell.get("execution_count")
               for cell in notebook.cells if cell.cell_type == "code")
    source = "\n".join(cell.source for cell in notebook.cells)
    assert "https://colab.research.google.com/github/OWNER/towergraph/blob/main/notebooks/" \
           "explore.ipynb" in source
    assert 'REPO_URL = "https://github.com/OWNER/towergraph"' in source
    assert 'os.environ.get("TOWERGRAPH_SERVER", "http://localhost:8501")' in source


def test_notebook_runs_against_a_server(standin, monkeypatch):
    monkeypatch.setenv("TOWERGRAPH_SERVER", standin.rest_url)   # the kernel inherits these
    monkeypatch.setenv("TOWERGRAPH_QUERY", "Robot Chronicles 3")
    monkeypatch.setenv("TOWERGRAPH_USER", "u1")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(output.output_type != "error" for cell in cells for output in cell.outputs)
    install, endpoint, search, graph, stats, neighbours, far, user, session, both = cells

    # The install cell saw the package and did not touch the network.
    assert "importable already: nothing to install" in outputs(install, "text/plain")
    assert f"{standin.rest_url}: model 'towergraph' version 1" in outputs(endpoint, "text/plain")

    with TowerGraphClient.connect(standin.rest_url) as client:
        matches = client.search("Robot Chronicles 3", 10)
    assert f"{len(matches)} matches; the graph below starts from the first: " \
           f"{matches[0].title!r} (item {matches[0].item_id})" in outputs(search, "text/plain")
    assert outputs(search, "text/html").count("<tr") == 1 + len(matches)

    frame = outputs(graph, "text/html")
    assert frame.startswith("<div><iframe srcdoc=") and "new vis.Network" in frame
    assert "Warning" not in outputs(graph, "text/plain")
    assert not re.search(r"(src|href)=&quot;https?://", frame)   # offline: all inlined

    words = outputs(stats, "text/plain")
    assert re.search(r"^\d+ items joined by \d+ similarity links\.$", words, re.M)
    assert "Its shape is " in words and "By distance: the centre, 8 one hop away" in words
    assert "similarity" in outputs(neighbours, "text/html")
    assert " → " in outputs(far, "text/html")

    assert "Strategy: user — from the user's history" in outputs(user, "text/plain")
    assert "Strategy: session — from the browsing session alone" in outputs(session,
                                                                            "text/plain")
    assert "Strategy: user+session —" in outputs(both, "text/plain")
    for cell in (user, session, both):
        assert outputs(cell, "text/html").count("<tr") == 1 + 5      # header + k rows

    # The hostile title (the query's best match, so the graph's seed too) is text in every HTML
    # output: escaped by the tables, and escaped twice inside the graph's srcdoc attribute.
    html = "".join(outputs(cell, "text/html") for cell in cells)
    assert tiny_world.HOSTILE_MARKUP.replace("<", "&lt;").replace(">", "&gt;") in html
    assert "<img" not in html
