"""bench.train.memory: the training-state byte count and the CPU peak of one step, on known sizes."""

from __future__ import annotations

import sys

import pytest
import torch

from bench.train.memory import out_of_memory, reset_cpu_peak, step_peak_bytes, training_state_bytes

MIB = 2**20


def test_training_state_counts_parameters_gradients_and_adam_moments():
    layer = torch.nn.Linear(100, 10)  # 1,010 float32 parameters
    optimizer = torch.optim.Adam(layer.parameters())
    layer(torch.ones(4, 100)).sum().backward()
    optimizer.step()
    state = training_state_bytes(layer, optimizer)
    assert state["parameters"] == state["gradients"] == 4 * 1010
    assert state["optimizer_state"] == 2 * 4 * 1010 + 2 * 4  # two moments, and a float32 step per tensor
    assert state["total"] == 4 * 4 * 1010 + 8


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the CPU peak is resettable only on Linux")
def test_cpu_step_peak_is_what_the_step_held_at_once():
    if not reset_cpu_peak():
        pytest.skip("this kernel does not let a process reset its peak RSS (/proc/self/clear_refs)")

    def two_buffers_alive() -> None:
        a = torch.ones(16 * MIB // 4)  # 16 MiB, pages touched
        b = a * 2  # 16 MiB more while a lives
        del a, b

    def one_buffer() -> None:
        a = torch.ones(16 * MIB // 4)
        del a

    for _ in range(2):  # the second round is past any first-call allocations
        both, kind = step_peak_bytes(torch.device("cpu"), two_buffers_alive)
        single, _ = step_peak_bytes(torch.device("cpu"), one_buffer)
    assert kind == "peak_rss_growth"
    assert 31 * MIB <= both < 36 * MIB  # page-granular, and the baseline RSS moves by a few pages
    assert 15 * MIB <= single < 20 * MIB


HOST_ALLOC = (
    "[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: you tried to "
    "allocate 200000000000 bytes. Error code 12 (Cannot allocate memory)"
)


def test_out_of_memory_names_where_and_how_much_and_ignores_other_errors():
    assert out_of_memory(RuntimeError(HOST_ALLOC)) == "out of memory in host memory (asked for 186.3 GiB)"
    cuda = torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has ...")
    assert out_of_memory(cuda) == "out of memory on the GPU (asked for 2.00 GiB)"
    assert out_of_memory(MemoryError()) == "out of memory in host memory"
    assert out_of_memory(RuntimeError("shape mismatch")) is None and out_of_memory(ValueError("x")) is None
