"""Property-based robustness of the stand-in: generated malformed REST bodies and gRPC tensors
get TF Serving's error shapes (a 4xx with {"error": ...}, or INVALID_ARGUMENT-family statuses),
never a 5xx or a hang, and good requests still succeed afterwards."""

import json

import grpc
import numpy as np
import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tensorflow.core.framework import tensor_pb2, types_pb2
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from serving.client import TowerGraphClient
from serving.standin import serve_in_process

FAST = settings(max_examples=60, deadline=2000, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])
SIGNATURES = ["similar_items", "search", "recommend", "item_info", "serving_default", "", "nope"]
CLIENT_ERRORS = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION,
                 grpc.StatusCode.NOT_FOUND, grpc.StatusCode.RESOURCE_EXHAUSTED,
                 grpc.StatusCode.UNIMPLEMENTED}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2 ** 70, 2 ** 70) | st.floats(allow_nan=True)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=3),
    max_leaves=12)
bodies = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries({"signature_name": st.sampled_from(SIGNATURES)},
                          optional={"inputs": json_values, "instances": json_values})
    .map(lambda v: json.dumps(v).encode()))


@pytest.fixture(scope="module")
def server(tiny_model_base):
    with serve_in_process(tiny_model_base, poll_seconds=0, max_batch_size=50) as running:
        yield running


def _still_good(server):
    for address in (server.rest_url, f"grpc://{server.grpc_target}"):
        with TowerGraphClient.connect(address) as client:
            assert client.similar_items(["4"], k=2)[0][0].item_id


@FAST
@given(body=bodies)
def test_malformed_rest_bodies_get_a_4xx_in_tf_serving_shape(server, body):
    answer = requests.post(f"{server.rest_url}/v1/models/towergraph:predict", data=body,
                           timeout=30)
    if answer.status_code == 200:  # a generated body may be a valid request
        assert "outputs" in answer.json() or "predictions" in answer.json()
        return
    assert 400 <= answer.status_code < 500, answer.text
    error = answer.json()["error"]
    assert isinstance(error, str) and 0 < len(error) <= 1100


dtypes = st.sampled_from([types_pb2.DT_STRING, types_pb2.DT_INT32, types_pb2.DT_INT64,
                          types_pb2.DT_FLOAT, types_pb2.DT_BOOL, types_pb2.DT_HALF, 0, 99])
tensors = st.builds(
    lambda dtype, dims, strings, ints, content: tensor_pb2.TensorProto(
        dtype=dtype, tensor_shape={"dim": [{"size": d} for d in dims]},
        string_val=strings, int_val=ints, tensor_content=content),
    dtypes, st.lists(st.integers(-3, 10 ** 7), max_size=3),
    st.lists(st.binary(max_size=10), max_size=4), st.lists(st.integers(-2 ** 31, 2 ** 31 - 1),
                                                             max_size=4),
    st.binary(max_size=16))


@FAST
@given(signature=st.sampled_from(SIGNATURES),
       inputs=st.dictionaries(st.sampled_from(["item_ids", "k", "query", "x", ""]), tensors,
                              max_size=3))
def test_malformed_grpc_tensors_get_a_client_error_status(server, signature, inputs):
    request = predict_pb2.PredictRequest()
    request.model_spec.name, request.model_spec.signature_name = "towergraph", signature
    for name, proto in inputs.items():
        request.inputs[name].CopyFrom(proto)
    with grpc.insecure_channel(server.grpc_target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        try:
            stub.Predict(request, timeout=30)
        except grpc.RpcError as error:
            assert error.code() in CLIENT_ERRORS, (error.code(), error.details())
            assert len(error.details()) <= 1100


def test_good_requests_succeed_after_the_storm(server):
    _still_good(server)
    with TowerGraphClient.connect(server.rest_url) as client:
        np.testing.assert_equal(client.item_embeddings(["4"]).shape[0], 1)
