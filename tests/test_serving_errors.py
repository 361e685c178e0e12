"""One error family and one tensor conversion for the client and the stand-in (issue 15)."""

import numpy as np
import pytest

from serving.errors import (Code, ModelNotFound, RequestRejected, ServerFailed, ServerUnavailable,
                            ServingError, code_for_http_status, echo, error_for_code)


@pytest.mark.parametrize("code, family", [
    (Code.UNAVAILABLE, ServerUnavailable), (Code.DEADLINE_EXCEEDED, ServerUnavailable),
    (Code.NOT_FOUND, ModelNotFound), (Code.INVALID_ARGUMENT, RequestRejected),
    (Code.FAILED_PRECONDITION, RequestRejected), (Code.RESOURCE_EXHAUSTED, RequestRejected),
    (Code.INTERNAL, ServerFailed), (Code.UNKNOWN, ServerFailed)])
def test_a_code_picks_one_class_of_the_family_on_both_ends(code, family):
    error = error_for_code(code, "message")
    assert type(error) is family and isinstance(error, ServingError) and error.code == code
    # What the stand-in answers over REST reads back as the same code, hence the same class.
    assert type(error_for_code(code_for_http_status(error.http_status), "m")) is family


def test_echo_keeps_long_input_out_of_messages():
    assert echo("hobbit") == "'hobbit'"
    long = echo("x" * 1_000_000)
    assert len(long) < 150 and "1000000 characters" in long


@pytest.mark.parametrize("array", [
    np.array([["Ünïcödé", "<b>"], ["", "x"]], dtype=object), np.array(["a", "bé"]),
    np.arange(6, dtype=np.int32).reshape(2, 3), np.array([0.5, -1.25], np.float32),
    np.array([True, False])])
def test_tensor_protos_round_trip(array):
    from serving.tensors import decode_text, from_tensor_proto, to_tensor_proto

    back = decode_text(from_tensor_proto("t", to_tensor_proto(array)))
    assert back.shape == array.shape and back.tolist() == array.tolist()


def test_a_tensor_proto_declaring_a_huge_shape_is_refused_before_allocating():
    from serving.tensors import from_tensor_proto, to_tensor_proto

    proto = to_tensor_proto(np.array([1], np.int32))
    proto.tensor_shape.dim[0].size = 10 ** 12
    with pytest.raises(RequestRejected, match="oversized"):
        from_tensor_proto("input 'k'", proto, max_elements=1000)


def test_saved_model_transport_fails_like_the_servers(tiny_model_base):
    from serving.client import TowerGraphClient

    with TowerGraphClient.connect(str(tiny_model_base / "1"), protocol="saved_model") as client:
        assert client.protocol == "SavedModel" and client.address.endswith("1")
        with pytest.raises(RequestRejected, match='signature key "nope" not found'):
            client.transport.predict("nope", {})
        with pytest.raises(RequestRejected, match="k must be"):
            client.similar_items(["4"], k=10_000)
