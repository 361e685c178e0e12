"""The stand-in's gRPC API (TF Serving's PredictionService and ModelService), and how it picks up
new versions while serving."""

import shutil
import time

import grpc
import numpy as np
import pytest
import requests
import towergraph.tf_env  # noqa: F401  (Keras 2 for TFRS; before TensorFlow)
import tensorflow as tf
from tensorflow_serving.apis import (get_model_metadata_pb2, get_model_status_pb2,
                                     model_service_pb2_grpc, predict_pb2,
                                     prediction_service_pb2_grpc)

import tiny_world
from serving.standin import serve_in_process
from serving.standin.repository import AVAILABLE as AVAILABLE_STATE
from serving.standin.repository import END as END_STATE
from serving.standin.repository import ModelRepository

MODEL = tiny_world.MODEL_NAME
MAX_BATCH = 50
MAX_BYTES = 64 * 1024
AVAILABLE = get_model_status_pb2.ModelVersionStatus.AVAILABLE
END = get_model_status_pb2.ModelVersionStatus.END


@pytest.fixture(scope="module")
def server(tiny_model_base):
    with serve_in_process(tiny_model_base, MODEL, rest_port=None, poll_seconds=0,
                          labels={"stable": 1}, max_batch_size=MAX_BATCH,
                          max_request_bytes=MAX_BYTES) as server:
        yield server


@pytest.fixture(scope="module")
def stubs(server):
    channel = grpc.insecure_channel(server.grpc_target)
    yield (prediction_service_pb2_grpc.PredictionServiceStub(channel),
           model_service_pb2_grpc.ModelServiceStub(channel))
    channel.close()


def predict_request(signature, model=MODEL, version=None, **inputs):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = signature
    if version is not None:
        request.model_spec.version.value = version
    for name, value in inputs.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
    return request


def status_request(model=MODEL, version=None):
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = model
    if version is not None:
        request.model_spec.version.value = version
    return request


def metadata_request(model=MODEL, fields=("signature_def",)):
    request = get_model_metadata_pb2.GetModelMetadataRequest()
    request.model_spec.name = model
    request.metadata_field.extend(fields)
    return request


def rpc_error(call, request) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call(request, timeout=30)
    return caught.value


def test_predict_similar_items(stubs):
    predictions, _ = stubs
    response = predictions.Predict(predict_request(
        "similar_items", item_ids=np.array([b"0", b"1"]), k=np.array([3, 3], np.int32)),
        timeout=30)
    assert response.model_spec.name == MODEL
    assert response.model_spec.version.value == 1
    assert response.model_spec.signature_name == "similar_items"
    assert set(response.outputs) == {"found", "item_ids", "titles", "genres", "authors",
                                     "scores", "cold"}
    items = tf.make_ndarray(response.outputs["item_ids"])
    assert items.shape == (2, 3)
    assert {tiny_world.genre_of(int(i)) for i in items[0]} == {tiny_world.genre_of(0)}
    assert tf.make_ndarray(response.outputs["found"]).tolist() == [True, True]
    # typed value fields, as TF Serving's Predict fills them
    scores = response.outputs["scores"]
    assert len(scores.float_val) == 6 and not scores.tensor_content
    assert [d.size for d in scores.tensor_shape.dim] == [2, 3]


def test_predict_default_signature_and_output_filter(stubs):
    predictions, _ = stubs
    request = predict_request("", item_ids=np.array([b"5"]))
    request.output_filter.append("embeddings")
    response = predictions.Predict(request, timeout=30)
    assert response.model_spec.signature_name == "serving_default"
    assert list(response.outputs) == ["embeddings"]
    assert tf.make_ndarray(response.outputs["embeddings"]).shape == (1, 16)


def test_predict_search(stubs):
    predictions, _ = stubs
    response = predictions.Predict(predict_request(
        "search", query=np.array(["dragon".encode()]), k=np.array([5], np.int32)), timeout=30)
    titles = tf.make_ndarray(response.outputs["titles"])[0]
    assert len(titles) == 5 and all(b"Dragon" in title for title in titles)


def test_version_labels(stubs):
    predictions, _ = stubs
    request = predict_request("", item_ids=np.array([b"1"]))
    request.model_spec.version_label = "stable"
    assert predictions.Predict(request, timeout=30).model_spec.version.value == 1
    request.model_spec.version_label = "nope"
    error = rpc_error(predictions.Predict, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == "Unrecognized servable version label: nope"


def test_get_model_metadata(stubs):
    predictions, _ = stubs
    response = predictions.GetModelMetadata(metadata_request(), timeout=30)
    assert response.model_spec.name == MODEL and response.model_spec.version.value == 1
    signature_defs = get_model_metadata_pb2.SignatureDefMap()
    assert response.metadata["signature_def"].Unpack(signature_defs)
    similar = signature_defs.signature_def["similar_items"]
    assert similar.method_name == "tensorflow/serving/predict"
    assert similar.inputs["k"].dtype == tf.int32.as_datatype_enum
    assert {"serving_default", "recommend", "search", "item_info", "user_embeddings"} <= \
        set(signature_defs.signature_def)


def test_get_model_status(stubs):
    _, models = stubs
    for version in (None, 1):
        response = models.GetModelStatus(status_request(version=version), timeout=30)
        (entry,) = response.model_version_status
        assert (entry.version, entry.state) == (1, AVAILABLE)
        assert entry.status.error_code == 0 and entry.status.error_message == ""


def test_not_found(stubs):
    predictions, models = stubs
    error = rpc_error(predictions.Predict, predict_request("", model="nope",
                                                           item_ids=np.array([b"1"])))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert error.details() == "Servable not found for request: Latest(nope)"
    error = rpc_error(predictions.Predict, predict_request("", version=9,
                                                           item_ids=np.array([b"1"])))
    assert error.code() == grpc.StatusCode.NOT_FOUND and "Specific(towergraph, 9)" in \
        error.details()
    assert rpc_error(models.GetModelStatus, status_request("nope")).code() == \
        grpc.StatusCode.NOT_FOUND
    assert rpc_error(models.GetModelStatus, status_request(version=9)).code() == \
        grpc.StatusCode.NOT_FOUND
    assert rpc_error(predictions.GetModelMetadata, metadata_request("nope")).code() == \
        grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize("k", [0, tiny_world.MAX_K + 1])
def test_bad_k_is_invalid_argument(stubs, k):
    predictions, _ = stubs
    error = rpc_error(predictions.Predict, predict_request(
        "similar_items", item_ids=np.array([b"1"]), k=np.array([k], np.int32)))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "k must be" in error.details() and "Graph execution error" not in error.details()


@pytest.mark.parametrize("inputs, fragment", [
    ({"item_ids": np.array([b"1"])}, "Missing but required: {k}"),
    ({"item_ids": np.array([b"1"]), "k": np.array([3], np.int32), "x": np.array([1])},
     "Sent extra: {x}"),
    ({"item_ids": np.array([b"1"]), "k": np.array([3], np.int64)},
     "has dtype DT_INT64 but the signature expects DT_INT32"),
    ({"item_ids": np.array([[b"1"]]), "k": np.array([3], np.int32)}, "has shape [1,1]"),
    ({"item_ids": np.array([b"1"] * (MAX_BATCH + 1)),
      "k": np.array([3] * (MAX_BATCH + 1), np.int32)}, "--max-batch-size"),
])
def test_invalid_inputs(stubs, inputs, fragment):
    predictions, _ = stubs
    error = rpc_error(predictions.Predict, predict_request("similar_items", **inputs))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert fragment in error.details()


def test_shapes_are_checked_before_tensors_are_built(stubs):
    predictions, _ = stubs
    request = predict_request("similar_items", item_ids=np.array([b"1"]),
                              k=np.array([3], np.int32))
    huge = request.inputs["k"]
    del huge.tensor_shape.dim[:]
    huge.tensor_shape.dim.add(size=1)
    huge.tensor_shape.dim.add(size=10 ** 9)  # one int_val, "repeated" to fill the shape
    huge.ClearField("tensor_content")
    huge.int_val.append(3)
    error = rpc_error(predictions.Predict, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "oversized" in error.details()


def test_other_errors(stubs):
    predictions, _ = stubs
    error = rpc_error(predictions.Predict, predict_request("nope", item_ids=np.array([b"1"])))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error.details() == 'Serving signature key "nope" not found.'
    error = rpc_error(predictions.GetModelMetadata, metadata_request(fields=()))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    request = predict_request("", item_ids=np.array([b"1"]))
    request.output_filter.append("nope")
    assert rpc_error(predictions.Predict, request).code() == grpc.StatusCode.INVALID_ARGUMENT


def test_message_over_the_limit_is_resource_exhausted(stubs):
    predictions, _ = stubs
    error = rpc_error(predictions.Predict, predict_request(
        "", item_ids=np.array([b"x" * 1000] * (MAX_BYTES // 1000 + 1))))
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


# -- new versions while serving -----------------------------------------------------------------

def wait_for(condition, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def test_new_versions_are_picked_up_and_half_written_ones_do_not_break_serving(
        tiny_model_base, tmp_path):
    base = tmp_path / MODEL
    shutil.copytree(tiny_model_base, base)
    with serve_in_process(base, MODEL, poll_seconds=0.2) as server:
        channel = grpc.insecure_channel(server.grpc_target)
        predictions = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        models = model_service_pb2_grpc.ModelServiceStub(channel)
        rest = f"{server.rest_url}/v1/models/{MODEL}"

        def states():
            response = models.GetModelStatus(status_request(), timeout=30)
            return [(entry.version, entry.state) for entry in response.model_version_status]

        def served_version():
            response = predictions.Predict(predict_request("", item_ids=np.array([b"1"])),
                                           timeout=30)
            return response.model_spec.version.value

        assert states() == [(1, AVAILABLE)]
        shutil.copytree(base / "1", base / "2")
        wait_for(lambda: states() == [(2, AVAILABLE), (1, END)])
        assert served_version() == 2
        assert requests.get(f"{rest}/metadata", timeout=30).json()["model_spec"]["version"] \
            == "2"
        assert requests.get(rest, timeout=30).json()["model_version_status"][0] == {
            "version": "2", "state": "AVAILABLE",
            "status": {"error_code": "OK", "error_message": ""}}

        # A version still being written: a dir without saved_model.pb is not a version yet;
        # one with saved_model.pb but no variables fails to load, stays unserved (END with the
        # error) and is retried when its files change. Meanwhile version 2 answers.
        (base / "3").mkdir()
        time.sleep(0.6)
        shutil.copy(base / "2" / "saved_model.pb", base / "3" / "saved_model.pb")
        failed = wait_for(lambda: [entry for entry in models.GetModelStatus(
            status_request(version=3), timeout=30).model_version_status
            if entry.state == END and entry.status.error_message] if 3 in dict(states())
            else None)
        assert failed[0].status.error_code != 0
        assert served_version() == 2
        assert post_ok(rest)

        shutil.copytree(base / "2" / "variables", base / "3" / "variables")
        shutil.copytree(base / "2" / "assets", base / "3" / "assets", dirs_exist_ok=True)
        wait_for(lambda: dict(states()).get(3) == AVAILABLE)
        assert served_version() == 3
        assert dict(states()) == {3: AVAILABLE, 2: END, 1: END}
        channel.close()


def post_ok(rest_url) -> bool:
    response = requests.post(f"{rest_url}:predict", json={"instances": ["1"]}, timeout=30)
    return response.status_code == 200


class FakeServable:
    def __init__(self, version):
        self.version = version


def test_repository_policy_without_tensorflow(tmp_path):
    """The version policy on its own: latest N, two polls of unchanged files before a new
    version loads, failed loads retried only when their files change, rollback on deletion."""
    calls = []

    def loader(name, version, path):
        calls.append(version)
        if (path / "broken").exists():
            raise ValueError("half written")
        return FakeServable(version)

    def add(version, broken=False):
        (tmp_path / str(version)).mkdir()
        (tmp_path / str(version) / "saved_model.pb").write_bytes(b"pb")
        if broken:
            (tmp_path / str(version) / "broken").write_bytes(b"")

    def states():
        return {version: status.state for version, status in repository.statuses()}

    add(1), add(2)
    (tmp_path / "5").mkdir()  # no saved_model.pb yet: not a version
    repository = ModelRepository("m", tmp_path, labels={"first": 1}, loader=loader)
    repository.poll(initial=True)
    assert repository.loaded_versions() == [2] and calls == [2]
    assert repository.servable().version == 2
    with pytest.raises(Exception, match="Specific"):
        repository.servable(1)
    with pytest.raises(Exception, match="Specific"):
        repository.servable(label="first")

    add(3)
    repository.poll()
    assert repository.loaded_versions() == [2]  # first sighting: maybe still being written
    repository.poll()
    assert repository.loaded_versions() == [3]
    assert states() == {3: AVAILABLE_STATE, 2: END_STATE}

    add(4, broken=True)
    repository.poll(), repository.poll(), repository.poll()
    assert repository.loaded_versions() == [3] and calls.count(4) == 1
    status = dict(repository.statuses())[4]
    assert status.state == END_STATE and "half written" in status.error_message

    (tmp_path / "4" / "broken").unlink()
    repository.poll(), repository.poll()
    assert repository.loaded_versions() == [4] and calls.count(4) == 2

    shutil.rmtree(tmp_path / "4")
    repository.poll()
    assert repository.loaded_versions() == [3]  # TF Serving rolls back too
    for version in (1, 2, 3):
        shutil.rmtree(tmp_path / str(version))
    repository.poll()
    assert repository.loaded_versions() == [3]  # nothing on disk: keep serving

    two = ModelRepository("m", tmp_path, num_versions=2, loader=loader)
    add(6), add(7)
    two.poll(initial=True)
    assert two.loaded_versions() == [7, 6] and two.servable().version == 7
    assert two.servable(6).version == 6
