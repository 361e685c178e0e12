"""The stand-in's REST API against TF Serving's documented behaviour (api_rest.md, json_tensor.cc).

Two servers: the tiny TowerGraph model, and half_plus_three, the toy model of the REST API
documentation's examples (plus an `echo` signature whose *_bytes output is base64 encoded).
"""

import base64
import json
import time

import pytest
import requests
import towergraph.tf_env  # noqa: F401  (Keras 2 for TFRS; before TensorFlow)
import tensorflow as tf

import tiny_world
from serving.standin import serve_in_process

MODEL = tiny_world.MODEL_NAME
MAX_BATCH = 50
MAX_BYTES = 64 * 1024


@pytest.fixture(scope="module")
def server(tiny_model_base):
    # The serving dir (parent of the model base path), as `serve --model-dir` gets it.
    with serve_in_process(tiny_model_base.parent, MODEL, grpc_port=None, poll_seconds=0,
                          labels={"stable": 1, "canary": 2}, max_batch_size=MAX_BATCH,
                          max_request_bytes=MAX_BYTES) as server:
        yield server


@pytest.fixture(scope="module")
def url(server):
    return f"{server.rest_url}/v1/models/{MODEL}"


class HalfPlusThree(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
    def predict(self, x):
        return {"y": 0.5 * x + 3.0}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="data_bytes")])
    def echo(self, data_bytes):
        return {"data_bytes": data_bytes, "length": tf.strings.length(data_bytes)}


@pytest.fixture(scope="module")
def toy_url(tmp_path_factory):
    base = tmp_path_factory.mktemp("toy") / "half_plus_three"
    module = HalfPlusThree()
    tf.saved_model.save(module, str(base / "123"),
                        signatures={"serving_default": module.predict, "echo": module.echo})
    with serve_in_process(base, "half_plus_three", grpc_port=None, poll_seconds=0) as server:
        yield server.rest_url


def post(url, body):
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return requests.post(url, data=data, headers={"Content-Type": "application/json"},
                         timeout=30)


def assert_error(response, status, *fragments):
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert list(body) == ["error"] and isinstance(body["error"], str)
    assert "Traceback" not in body["error"]
    for fragment in fragments:
        assert fragment in body["error"], body["error"]
    return body["error"]


# -- the documentation's own examples (half_plus_three) -------------------------------------------

def test_doc_example_status(toy_url):
    response = requests.get(f"{toy_url}/v1/models/half_plus_three", timeout=30)
    assert response.status_code == 200
    assert response.json() == {"model_version_status": [{
        "version": "123", "state": "AVAILABLE",
        "status": {"error_code": "OK", "error_message": ""}}]}


def test_doc_example_predict_row_single_input_single_output(toy_url):
    response = post(f"{toy_url}/v1/models/half_plus_three:predict",
                    {"instances": [1.0, 2.0, 5.0]})
    assert response.status_code == 200
    assert response.json() == {"predictions": [3.5, 4.0, 5.5]}


def test_doc_example_columnar_single_output_is_the_bare_value(toy_url):
    url = f"{toy_url}/v1/models/half_plus_three:predict"
    assert post(url, {"inputs": [1.0, 2.0]}).json() == {"outputs": [3.5, 4.0]}
    assert post(url, {"inputs": {"x": [1.0]}}).json() == {"outputs": [3.5]}


def test_doc_example_unknown_model_is_404(toy_url):
    response = post(f"{toy_url}/v1/models/half:predict", {"instances": [1.0, 5.0]})
    assert assert_error(response, 404) == "Servable not found for request: Latest(half)"


def test_floats_print_like_tf_serving(toy_url):
    # 6 significant digits when they round-trip the float32, else 9 (json_tensor.cc)
    response = post(f"{toy_url}/v1/models/half_plus_three:predict",
                    {"inputs": [0.4, -5.6, 1e-5, float("nan"), float("inf")]})
    assert response.text.replace(" ", "") == \
        '{"outputs":[3.2,0.200000048,3.00000501,NaN,Infinity]}'


def test_b64_in_and_bytes_output_out(toy_url):
    raw = bytes([0, 1, 2, 255])
    encoded = base64.b64encode(raw).decode()
    response = post(f"{toy_url}/v1/models/half_plus_three:predict",
                    {"signature_name": "echo", "instances": [{"b64": encoded}, "ab"]})
    assert response.status_code == 200, response.text
    assert response.json() == {"predictions": [
        {"data_bytes": {"b64": encoded}, "length": 4},
        {"data_bytes": {"b64": base64.b64encode(b"ab").decode()}, "length": 2}]}


# -- status and metadata ------------------------------------------------------------------------

EXPECTED_STATUS = {"model_version_status": [{"version": "1", "state": "AVAILABLE",
                                             "status": {"error_code": "OK",
                                                        "error_message": ""}}]}


@pytest.mark.parametrize("suffix", ["", "/versions/1", "/labels/stable"])
def test_status(url, suffix):
    response = requests.get(url + suffix, timeout=30)
    assert response.status_code == 200
    assert response.json() == EXPECTED_STATUS


def test_status_errors(server, url):
    assert_error(requests.get(url + "/versions/7", timeout=30), 404,
                 f"Could not find version 7 of model {MODEL}")
    assert_error(requests.get(f"{server.rest_url}/v1/models/nope", timeout=30), 404,
                 "Could not find any versions of model nope")
    assert_error(requests.get(url + "/labels/nope", timeout=30), 400,
                 "Unrecognized servable version label: nope")
    assert_error(requests.get(f"{server.rest_url}/v1/models", timeout=30), 400,
                 "Missing model name in request.")


@pytest.mark.parametrize("suffix", ["/metadata", "/versions/1/metadata",
                                    "/labels/stable/metadata"])
def test_metadata_is_the_json_form_of_the_signature_def_map(url, suffix):
    response = requests.get(url + suffix, timeout=30)
    assert response.status_code == 200
    body = response.json()
    assert body["model_spec"] == {"name": MODEL, "signature_name": "", "version": "1"}
    assert list(body["metadata"]) == ["signature_def"]
    signatures = body["metadata"]["signature_def"]["signature_def"]
    assert {"serving_default", "similar_items", "recommend", "user_embeddings", "search",
            "item_info"} <= set(signatures)
    similar = signatures["similar_items"]
    assert similar["method_name"] == "tensorflow/serving/predict"
    assert set(similar["inputs"]) == {"item_ids", "k"}
    k = similar["inputs"]["k"]
    assert k["dtype"] == "DT_INT32"
    assert k["tensor_shape"] == {"dim": [{"size": "-1", "name": ""}], "unknown_rank": False}
    assert k["name"].endswith(":0")
    assert similar["outputs"]["scores"]["dtype"] == "DT_FLOAT"
    assert [d["size"] for d in similar["outputs"]["titles"]["tensor_shape"]["dim"]] == ["-1", "-1"]
    assert similar["outputs"]["found"]["dtype"] == "DT_BOOL"


# -- predict ------------------------------------------------------------------------------------

OUTPUTS = {"found", "item_ids", "titles", "genres", "authors", "scores", "cold"}


def test_row_format_several_inputs_and_outputs(url):
    response = post(url + ":predict", {"signature_name": "similar_items",
                                       "instances": [{"item_ids": "0", "k": 3},
                                                     {"item_ids": "1", "k": 3}]})
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert len(predictions) == 2
    for seed, prediction in zip(["0", "1"], predictions):
        assert set(prediction) == OUTPUTS
        assert prediction["found"] is True
        assert len(prediction["item_ids"]) == 3 and seed not in prediction["item_ids"]
        assert all(isinstance(item, str) for item in prediction["item_ids"])
        assert all(isinstance(score, float) for score in prediction["scores"])
        # same genre as the seed: the tiny world's known answer
        assert {tiny_world.genre_of(int(item)) for item in prediction["item_ids"]} == \
            {tiny_world.genre_of(int(seed))}


def test_columnar_format_several_outputs(url):
    response = post(url + ":predict", {"signature_name": "similar_items",
                                       "inputs": {"item_ids": ["0", "nope"], "k": [2, 2]}})
    assert response.status_code == 200, response.text
    outputs = response.json()["outputs"]
    assert set(outputs) == OUTPUTS
    assert outputs["found"] == [True, False]
    assert len(outputs["titles"]) == 2 and len(outputs["titles"][0]) == 2


def test_default_signature_and_single_input_row_format(url):
    response = post(url + ":predict", {"instances": ["0", "1"]})
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert [p["found"] for p in predictions] == [True, True]
    assert len(predictions[0]["embeddings"]) == 16


def test_b64_input_equals_the_string(url):
    plain = post(url + ":predict", {"instances": ["7"]}).json()
    encoded = post(url + ":predict",
                   {"instances": [{"b64": base64.b64encode(b"7").decode()}]}).json()
    assert plain == encoded


def test_hostile_title_comes_back_as_plain_json_text(url):
    response = post(url + ":predict", {"signature_name": "item_info",
                                       "inputs": {"item_ids": [str(tiny_world.HOSTILE_ITEM)]}})
    assert response.status_code == 200
    assert response.json()["outputs"]["titles"] == [tiny_world.title_of(tiny_world.HOSTILE_ITEM)]
    assert isinstance(response.json()["outputs"]["popularity"][0], int)


def test_extra_columnar_keys_are_ignored_like_tf_serving(url):
    response = post(url + ":predict", {"signature_name": "item_info",
                                       "inputs": {"item_ids": ["1"], "unused": [1]}})
    assert response.status_code == 200


def test_empty_columnar_batch(url):
    response = post(url + ":predict", {"signature_name": "search",
                                       "inputs": {"query": [], "k": []}})
    assert response.status_code == 200, response.text
    assert response.json()["outputs"]["item_ids"] == []


@pytest.mark.parametrize("route", ["/versions/1", "/labels/stable", "/VERSIONS/1"])
def test_version_and_label_routes(url, route):
    response = post(url + route + ":predict", {"instances": ["3"]})
    assert response.status_code == 200, response.text


def test_versions_that_are_not_loaded_are_404(url):
    assert_error(post(url + "/versions/2:predict", {"instances": ["3"]}), 404,
                 f"Servable not found for request: Specific({MODEL}, 2)")
    assert_error(post(url + "/labels/canary:predict", {"instances": ["3"]}), 404,
                 f"Specific({MODEL}, 2)")
    assert_error(post(url + "/labels/nope:predict", {"instances": ["3"]}), 400,
                 "Unrecognized servable version label: nope")


# -- errors ---------------------------------------------------------------------------------------

SIMILAR = {"signature_name": "similar_items"}


@pytest.mark.parametrize("body, fragment", [
    (b"", "JSON Parse error: The document is empty"),
    (b"{\"instances\": [", "JSON Parse error"),
    (b"\xff\xfe{}", "JSON Parse error"),
    (b"[" * 20_000 + b"]" * 20_000, "JSON Parse error"),
    (b'{"instances": [' + b"1" * 5000 + b"]}", "JSON Parse error"),
    ({"instances": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["1"]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]},
     "tensors have at most 32 dimensions"),
    (b"[1, 2]", "Is not object"),
    ({"signature_name": 7, "instances": ["1"]}, "'signature_name' key must be a string"),
    ({"signature_name": "nope", "instances": ["1"]}, 'Serving signature key "nope" not found'),
    ({"signature_name": "similar_items"}, "Missing 'inputs' or 'instances' key"),
    ({**SIMILAR, "instances": [], "inputs": {}}, "only one of 'inputs' or 'instances'"),
    ({**SIMILAR, "instances": []}, "No values in 'instances' array"),
    ({**SIMILAR, "instances": {"item_ids": "1"}}, "to be an list/array"),
    ({**SIMILAR, "instances": ["1", "2"]}, "instances is a plain list"),
    ({**SIMILAR, "instances": [{"item_ids": "1"}]}, "keys must be equal to: item_ids,k"),
    ({**SIMILAR, "instances": [{"item_ids": "1", "kk": 3}]}, "keys must be equal to"),
    ({**SIMILAR, "instances": [{"item_ids": "1", "k": 3}, "2"]}, "Expecting object"),
    ({**SIMILAR, "inputs": {"item_ids": ["1"]}}, "Missing named input: k in 'inputs' object."),
    ({**SIMILAR, "inputs": ["1"]}, "inputs is a plain value/list"),
    ({**SIMILAR, "inputs": {"item_ids": ["1"], "k": ["3"]}}, "is not of expected type: DT_INT32"),
    ({**SIMILAR, "inputs": {"item_ids": ["1"], "k": [3.5]}}, "is not of expected type: DT_INT32"),
    ({**SIMILAR, "inputs": {"item_ids": ["1"], "k": [True]}}, "is not of expected type"),
    ({**SIMILAR, "inputs": {"item_ids": ["1"], "k": [2 ** 40]}}, "is not of expected type"),
    ({**SIMILAR, "inputs": {"item_ids": [1], "k": [3]}}, "is not of expected type: DT_STRING"),
    ({**SIMILAR, "inputs": {"item_ids": [{"b64": "***"}], "k": [3]}}, "Unable to base64 decode"),
    ({**SIMILAR, "inputs": {"item_ids": [{"x": "a"}], "k": [3]}}, "not formatted correctly for "
                                                                   "base64"),
    ({**SIMILAR, "inputs": {"item_ids": "1", "k": 3}}, "has shape [] but the signature expects "
                                                       "[-1]"),
    ({**SIMILAR, "inputs": {"item_ids": [["1"]], "k": [3]}}, "has shape [1,1]"),
    ({"signature_name": "recommend",
      "instances": [{"user_id": "u1", "session_item_ids": ["1", "2"], "k": 3},
                    {"user_id": "u2", "session_item_ids": ["1"], "k": 3}]},
     "Encountered list at unexpected size: 1"),
    ({"signature_name": "recommend",
      "inputs": {"user_id": ["u1"], "session_item_ids": [["1"], "2"], "k": [3]}},
     "found at incorrect level"),
    ({"signature_name": "recommend",
      "inputs": {"user_id": ["u1"], "session_item_ids": [["1", ["2"]]], "k": [3]}},
     "Encountered list at unexpected level"),
    ({**SIMILAR, "inputs": {"item_ids": ["1"], "k": [0]}}, "k must be"),
    ({**SIMILAR, "inputs": {"item_ids": ["1"], "k": [tiny_world.MAX_K + 1]}}, "k must be"),
])
def test_bad_requests_are_400(url, body, fragment):
    message = assert_error(post(url + ":predict", body), 400, fragment)
    assert "Graph execution error" not in message and "[Op:" not in message


def test_k_out_of_range_names_the_limit(url):
    message = assert_error(post(url + ":predict", {**SIMILAR, "instances": [
        {"item_ids": "1", "k": 99}]}), 400)
    assert f"k must be at most {tiny_world.MAX_K}" in message


def test_batch_over_the_limit_is_400_naming_it(url):
    rows = MAX_BATCH + 1
    message = assert_error(post(url + ":predict", {"instances": ["1"] * rows}), 400)
    assert str(rows) in message and str(MAX_BATCH) in message and "--max-batch-size" in message
    assert post(url + ":predict", {"instances": ["1"] * MAX_BATCH}).status_code == 200


def test_body_over_the_limit_is_413(url):
    body = json.dumps({"instances": ["x" * 1000] * (MAX_BYTES // 1000 + 1)})
    assert_error(post(url + ":predict", body), 413, str(MAX_BYTES), "--max-request-bytes")

    def chunks():  # no Content-Length: counted while it streams in
        yield b'{"instances": ['
        for _ in range(MAX_BYTES // 1000 + 1):
            yield b'"' + b"x" * 1000 + b'",'
        yield b'"x"]}'
    response = requests.post(url + ":predict", data=chunks(), timeout=30)
    assert_error(response, 413)


def test_unknown_model_predict_and_metadata_are_404(server):
    base = f"{server.rest_url}/v1/models/nope"
    assert_error(post(base + ":predict", {"instances": ["1"]}), 404,
                 "Servable not found for request: Latest(nope)")
    assert_error(requests.get(base + "/metadata", timeout=30), 404, "Latest(nope)")
    assert_error(post(base + "/versions/1:predict", {"instances": ["1"]}), 404,
                 "Specific(nope, 1)")


@pytest.mark.parametrize("verb", ["classify", "regress"])
def test_classify_and_regress_are_refused(url, verb):
    assert_error(post(f"{url}:{verb}", {"examples": [{"x": 1}]}), 400,
                 f"Expected {verb} signature method_name", "Predict only")


@pytest.mark.parametrize("method, path, status", [
    ("GET", "/v1/models/towergraph:predict", 400),
    ("POST", "/v1/models/towergraph", 400),
    ("PUT", "/v1/models/towergraph:predict", 400),
    ("POST", "/v1/models/towergraph:explain", 400),
    ("GET", "/v1/models/towergraph/versions/99999999999999999999", 400),
    ("GET", "/v2/models/towergraph", 404),
    ("GET", "/", 404),
])
def test_malformed_paths(server, method, path, status):
    response = requests.request(method, server.rest_url + path, data=b"{}", timeout=30)
    assert_error(response, status)


def test_responses_do_not_wait_for_delayed_acks(url):
    # Without TCP_NODELAY on accepted connections each response took ~40 ms.
    with requests.Session() as session:
        session.get(url, timeout=30)
        start = time.perf_counter()
        for _ in range(10):
            assert session.get(url, timeout=30).status_code == 200
        assert time.perf_counter() - start < 0.3


def test_still_serving_after_all_that(url):
    assert requests.get(url, timeout=30).json() == EXPECTED_STATUS
