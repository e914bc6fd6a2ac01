"""The ranker's gRPC wire codec and shared channels, without a server: the bytes sent are the
ModelInfer request tritonclient would build, the answer is read in place, and every client of
one URL shares one channel until the last one closes."""

from __future__ import annotations

import asyncio
import dataclasses

import grpc
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc._utils import _get_inference_request

from vidrec.backends.ranker import TritonRankerClient
from vidrec.config import TritonConfig, load_config
from vidrec.ranking.triton_client import (
    AIO_CHANNELS,
    SYNC_CHANNELS,
    InferenceCounts,
    TritonRanker,
    aio_channel_key,
    channel_options,
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


def test_ranker_target_defaults_to_host_port_and_the_environment_replaces_it() -> None:
    assert TritonConfig().ranker_target == "127.0.0.1:8001"
    moved = load_config({"VIDREC_TRITON__HOST": "triton", "VIDREC_TRITON__GRPC_PORT": "9001"})
    assert moved.triton.ranker_target == "triton:9001"
    target = "dns:///vidrec-triton-headless.vidrec.svc.cluster.local:8001"
    cfg = load_config({"VIDREC_TRITON__GRPC_TARGET": target, "VIDREC_TRITON__HOST": "triton"})
    assert cfg.triton.ranker_target == target


def test_channel_options_balance_per_request_and_follow_the_config() -> None:
    opts = dict(channel_options())
    assert opts["grpc.lb_policy_name"] == "round_robin"
    assert opts["grpc.max_receive_message_length"] == -1
    cfg = load_config(
        {
            "VIDREC_TRITON__GRPC_DNS_MIN_RESOLUTION_MS": "1000",
            "VIDREC_TRITON__GRPC_KEEPALIVE_MS": "7",
        }
    )
    opts = dict(channel_options(cfg.triton))
    assert opts["grpc.dns_min_time_between_resolutions_ms"] == 1000
    assert opts["grpc.keepalive_time_ms"] == 7


def test_clients_with_other_channel_options_get_their_own_channel() -> None:
    """A channel's options are fixed when it is made: sharing it would drop the others'."""
    pinned = channel_options(dataclasses.replace(TritonConfig(), grpc_lb_policy="pick_first"))

    async def session() -> tuple[int, int]:
        clients = [TritonRankerClient(URL, "ranker", 1.0, lambda _: "") for _ in range(2)]
        clients.append(TritonRankerClient(URL, "ranker", 1.0, lambda _: "", channel_options=pinned))
        for c in clients:
            c._infer()  # takes the channel
        try:
            return AIO_CHANNELS.users(aio_channel_key(URL)), AIO_CHANNELS.users(
                aio_channel_key(URL, options=pinned)
            )
        finally:
            for client in clients:
                await client.close()

    assert asyncio.run(session()) == (2, 1)
