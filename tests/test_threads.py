"""torch_threads: torch's thread count for a block, restored afterwards, per thread."""

import threading

import pytest
import torch

from gradient_ad._threads import check_n_threads, torch_threads


@pytest.fixture
def two_threads():
    """torch at 2 threads in this thread for the test, as it was afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def test_the_count_holds_inside_and_is_restored_after(two_threads):
    with torch_threads(1):
        assert torch.get_num_threads() == 1
        with torch_threads(3):
            assert torch.get_num_threads() == 3
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2
    with pytest.raises(KeyError), torch_threads(1):
        raise KeyError("restored on the way out of an error too")
    assert torch.get_num_threads() == 2


def test_none_leaves_torch_alone(two_threads):
    with torch_threads(None):
        assert torch.get_num_threads() == 2


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True])
def test_bad_counts_are_refused(bad):
    with pytest.raises((TypeError, ValueError), match="n_threads"):
        check_n_threads(bad)
    with pytest.raises((TypeError, ValueError), match="n_threads"), torch_threads(bad):
        pass


def test_a_block_in_another_thread_leaves_this_thread_alone(two_threads):
    inside, leave = threading.Event(), threading.Event()
    seen = {}

    def worker():
        with torch_threads(1):
            seen["worker"] = torch.get_num_threads()
            inside.set()
            leave.wait(10)
        seen["worker after"] = torch.get_num_threads()

    thread = threading.Thread(target=worker)
    thread.start()
    assert inside.wait(10)
    seen["main while the worker is inside"] = torch.get_num_threads()
    with torch_threads(3):  # and a block here meanwhile
        seen["main inside"] = torch.get_num_threads()
    leave.set()
    thread.join(10)
    assert seen == {
        "worker": 1,
        "main while the worker is inside": 2,
        "main inside": 3,
        "worker after": 2,  # its own count before the block (it started with 2)
    }
    assert torch.get_num_threads() == 2
