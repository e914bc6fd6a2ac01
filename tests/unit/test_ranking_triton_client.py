"""The ranker's gRPC wire codec and shared channels, without a server: the bytes sent are the
ModelInfer request tritonclient would build, the answer is read in place, and every client of
one URL shares one channel until the last one closes."""

from __future__ import annotations

import asyncio

import grpc
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc._utils import _get_inference_request

from vidrec.backends.ranker import TritonRankerClient
from vidrec.ranking.triton_client import (
    AIO_CHANNELS,
    SYNC_CHANNELS,
    InferenceCounts,
    TritonRanker,
    aio_channel_key,
    decode_scores,
    encode_request,
    rpc_reason,
)

URL = "127.0.0.1:1"  # never dialled: gRPC channels connect on the first call


def tritonclient_request(x: np.ndarray, version: str) -> pb.ModelInferRequest:
    infer_input = grpcclient.InferInput("features", list(x.shape), "FP32")
    infer_input.set_data_from_numpy(np.ascontiguousarray(x))
    return _get_inference_request(
        model_name="ranker",
        inputs=[infer_input],
        model_version=version,
        request_id="",
        outputs=[grpcclient.InferRequestedOutput("scores")],
        sequence_id=0,
        sequence_start=False,
        sequence_end=False,
        priority=0,
        timeout=None,
        parameters=None,
    )


@pytest.mark.parametrize("rows", [1, 500, 3000])
def test_encoded_request_is_what_tritonclient_sends(rows: int) -> None:
    x = np.random.default_rng(rows).standard_normal((rows, 203), dtype=np.float32)
    sent = pb.ModelInferRequest.FromString(encode_request("ranker", "2", x))
    assert sent == tritonclient_request(x, "2")
    assert sent.raw_input_contents[0] == x.tobytes()


def test_non_contiguous_input_goes_out_row_major() -> None:
    base = np.arange(40 * 30, dtype=np.float32).reshape(40, 30)
    for x in (base[:, ::2], np.asfortranarray(base)):
        sent = pb.ModelInferRequest.FromString(encode_request("ranker", "", x))
        got = np.frombuffer(sent.raw_input_contents[0], np.float32).reshape(x.shape)
        assert np.array_equal(got, x) and list(sent.inputs[0].shape) == list(x.shape)


def response(rows: int, datatype: str = "FP32", name: str = "scores") -> pb.ModelInferResponse:
    scores = np.arange(rows * 3, dtype=np.float32).reshape(rows, 3)
    answer = pb.ModelInferResponse(model_name="ranker")
    answer.outputs.add(name=name, datatype=datatype, shape=[rows, 3])
    answer.raw_output_contents.append(scores.tobytes())
    return answer


def test_scores_are_read_in_place() -> None:
    answer = response(7)
    scores = decode_scores(answer, 7)
    assert scores.shape == (7, 3) and scores.dtype == np.float32
    assert np.array_equal(scores, np.arange(21, dtype=np.float32).reshape(7, 3))
    owner = scores
    while isinstance(owner, np.ndarray):
        owner = owner.base
    assert isinstance(owner, bytes)  # a view over the answer's bytes, not a copy


@pytest.mark.parametrize(
    ("answer", "rows"),
    [(response(7), 6), (response(7, datatype="FP16"), 7), (response(7, name="logits"), 7)],
)
def test_unexpected_answers_are_refused(answer: pb.ModelInferResponse, rows: int) -> None:
    with pytest.raises(ValueError):
        decode_scores(answer, rows)


def test_sync_clients_of_one_url_share_one_channel() -> None:
    first, second = TritonRanker(URL), TritonRanker(URL, model_version="2")
    other = TritonRanker("127.0.0.1:2")
    try:
        assert first._channel is second._channel and first._channel is not other._channel
        assert SYNC_CHANNELS.users(URL) == 2
        first.close()
        first.close()  # idempotent: the count drops once
        assert SYNC_CHANNELS.users(URL) == 1
    finally:
        second.close()
        other.close()
    assert SYNC_CHANNELS.users(URL) == 0


def test_async_clients_share_a_channel_per_event_loop() -> None:
    async def session() -> tuple[int, int, int]:
        clients = [TritonRankerClient(URL, m, 1.0, lambda _: "") for m in ("ranker", "ranker_trt")]
        infers = [c._infer() for c in clients]
        key = aio_channel_key(URL)
        shared = AIO_CHANNELS.users(key)
        await clients[0].close()
        after_one = AIO_CHANNELS.users(key)
        await clients[1].close()
        assert infers[0] is not None
        return shared, after_one, AIO_CHANNELS.users(key)

    assert asyncio.run(session()) == (2, 1, 0)
    assert asyncio.run(session()) == (2, 1, 0)  # a new loop gets its own channel


def aio_error(code: grpc.StatusCode) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), "why")


def test_rpc_failures_map_to_degradation_reasons() -> None:
    assert rpc_reason(aio_error(grpc.StatusCode.DEADLINE_EXCEEDED)) == "timeout"
    assert rpc_reason(aio_error(grpc.StatusCode.UNAVAILABLE)) == "unavailable"
    assert rpc_reason(aio_error(grpc.StatusCode.INVALID_ARGUMENT)) == "error"


def test_inference_counts_subtract_to_a_window_and_add_up() -> None:
    start = InferenceCounts(10, 4, 400, ((100, 4),))
    later = InferenceCounts(26, 9, 1_200, ((100, 5), (300, 2), (200, 2)))
    window = later - start
    assert window == InferenceCounts(16, 5, 800, ((100, 1), (200, 2), (300, 2)))
    assert window.largest_batch == 300 and InferenceCounts().largest_batch == 0
    assert InferenceCounts() + window + start == InferenceCounts(
        26, 9, 1_200, ((100, 5), (200, 2), (300, 2))
    )
