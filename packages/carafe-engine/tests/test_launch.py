"""Launch: the flags checked together before anything starts (one line, exit 2; ValueError for library callers),
and a rendezvous that times out naming the address and the ranks that did not come."""

from __future__ import annotations

import argparse
import re
import socket
import threading

import pytest
import torch
from carafe_engine import all_reduce_sum, default_argument_parser, get_rank, get_world_size, launch
from carafe_engine.distributed import RendezvousError, _rendezvous


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _nothing():
    pass


BAD_LAUNCHES = [
    (["--num-gpus", "0"], "--num-gpus must be >= 1, got 0"),
    (["--num-machines", "0"], "--num-machines must be >= 1, got 0"),
    (["--num-machines", "2", "--machine-rank", "2", "--dist-url", "tcp://10.0.0.1:29500"],
     "--machine-rank must be 0 .. 1 with --num-machines 2, got 2"),
    (["--machine-rank", "-1"], "--machine-rank must be 0 .. 0 with --num-machines 1, got -1"),
    (["--num-machines", "2", "--machine-rank", "1"], "--dist-url auto only works on one machine"),
    (["--dist-url", "10.0.0.1:29500"], "--dist-url must be 'auto' or tcp://HOST:PORT (machine 0's address), got "
                                       "'10.0.0.1:29500'"),
    (["--dist-url", "tcp://10.0.0.1"], "--dist-url must be 'auto' or tcp://HOST:PORT"),
    (["--dist-url", "tcp://10.0.0.1:70000"], "--dist-url tcp://10.0.0.1:70000: the port must be 1 .. 65535"),
    (["--dist-timeout", "0"], "--dist-timeout must be a number of seconds > 0, got 0.0"),
]
if torch.cuda.is_available():
    BAD_LAUNCHES.append((["--num-gpus", str(torch.cuda.device_count() + 1)],
                         f"--num-gpus {torch.cuda.device_count() + 1} but this machine has"))


@pytest.mark.parametrize("argv,message", BAD_LAUNCHES)
def test_bad_launch_flags_are_one_line_and_exit_2(argv, message, capsys):
    parser = default_argument_parser("x")
    with pytest.raises(SystemExit) as exit_:
        parser.parse_args(argv + ["SOLVER.BASE_LR", "0.1"])
    assert exit_.value.code == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{parser.prog}: error: {message}"), lines
    # launch says the same to a library caller (the flags as argparse reads them, unchecked)
    args = argparse.ArgumentParser.parse_args(parser, argv)
    with pytest.raises(ValueError, match=re.escape(message)):
        launch(_nothing, args.num_gpus, args.num_machines, args.machine_rank, args.dist_url,
               rendezvous_timeout=args.dist_timeout)


def test_good_launch_flags_pass():
    args = default_argument_parser("x").parse_args(
        ["--num-machines", "2", "--machine-rank", "1", "--dist-url", "tcp://10.0.0.1:29500", "--dist-timeout", "45"])
    assert (args.num_machines, args.machine_rank, args.dist_timeout) == (2, 1, 45.0)


def test_rank_0_says_who_it_waits_for_and_times_out(capsys):
    url = f"tcp://127.0.0.1:{free_port()}"
    with pytest.raises(RendezvousError) as error:
        _rendezvous(url, 0, 3, timeout_s=1.0, report_every_s=0.4)
    assert str(error.value) == (f"rendezvous at {url} timed out after 1 s: ranks [1, 2] of 3 did not arrive (check "
                                f"--num-machines, --machine-rank and --dist-url on every machine)")
    waiting = capsys.readouterr().err.splitlines()
    assert len(waiting) == 2 and all(re.fullmatch(rf"waiting for ranks \[1, 2\] at {url} \(\d s\)", line)
                                     for line in waiting), waiting


def test_a_rank_that_cannot_reach_rank_0_times_out():
    url = f"tcp://127.0.0.1:{free_port()}"
    with pytest.raises(RendezvousError, match=re.escape(f"rendezvous at {url} timed out after 1 s: rank 1 could not "
                                                        f"reach rank 0 there")):
        _rendezvous(url, 1, 2, timeout_s=1.0)


def test_a_rank_that_reached_rank_0_times_out_when_others_do_not_come():
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    rank_0 = torch.distributed.TCPStore("127.0.0.1", port, 3, is_master=True, wait_for_workers=False)  # noqa: F841
    with pytest.raises(RendezvousError, match=re.escape(f"rendezvous at {url} timed out after 1 s: rank 1 reached "
                                                        f"rank 0 but not all 3 ranks arrived")):
        _rendezvous(url, 1, 3, timeout_s=1.0)


def test_rank_0_says_when_its_port_is_taken():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        url = f"tcp://127.0.0.1:{taken.getsockname()[1]}"
        with pytest.raises(RendezvousError, match=re.escape(f"rendezvous at {url}: rank 0 cannot serve on port")):
            _rendezvous(url, 0, 2, timeout_s=1.0)


def test_launch_of_one_machine_of_two_times_out_with_the_childs_message():
    url = f"tcp://127.0.0.1:{free_port()}"
    with pytest.raises(RendezvousError) as error:
        launch(_nothing, 1, num_machines=2, machine_rank=0, dist_url=url, rendezvous_timeout=3)
    assert str(error.value).startswith(f"rendezvous at {url} timed out after 3 s: ranks [1] of 2 did not arrive")


def _write_rank_sum(path):
    total = all_reduce_sum(torch.tensor([float(get_rank())]))
    (path / f"rank{get_rank()}").write_text(f"{get_world_size()} {total.item()}")


def test_two_machines_of_one_process_meet_at_the_dist_url(tmp_path):
    """Both machines' launches on this one (machine 1's in a thread): ranks 0 and 1 meet and all-reduce."""
    url = f"tcp://127.0.0.1:{free_port()}"
    failures = []

    def machine_1():
        try:
            launch(_write_rank_sum, 1, num_machines=2, machine_rank=1, dist_url=url, args=(tmp_path,),
                   rendezvous_timeout=120)
        except Exception as error:  # reported by the main thread
            failures.append(error)

    thread = threading.Thread(target=machine_1)
    thread.start()
    launch(_write_rank_sum, 1, num_machines=2, machine_rank=0, dist_url=url, args=(tmp_path,), rendezvous_timeout=120)
    thread.join()
    assert not failures
    assert [(tmp_path / f"rank{r}").read_text() for r in (0, 1)] == ["2 1.0", "2 1.0"]
