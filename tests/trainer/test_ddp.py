"""DistributedDataParallel code path: torchrun, 2 CPU processes, gloo, loopback only.

Each rank trains on its half of every global batch; with gradients averaged across ranks the
result must match one process training on the whole batch.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import torch
from helpers.processes import python_child
from helpers.trainer_mdp import tiny_config
from qt_trainer.checkpoint import load_checkpoint
from qt_trainer.synthetic import write_synthetic_dataset
from qt_trainer.train import Trainer


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_torchrun_two_cpu_ranks_match_one_process(tmp_path: Path, embedder, children) -> None:
    data = write_synthetic_dataset(tmp_path / "data", episodes=4, length=5, image_shape=(16, 16, 3), seed=1)
    config = tiny_config(4, batch_size=8, log_every=2, tau=0.2, target_update="polyak")
    (tmp_path / "config.json").write_text(json.dumps(config.to_dict()))
    env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1"}
    child = python_child(
        "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
        "--master_port", str(_free_port()), "-m", "qt_trainer.train", str(data.path), "--out",
        str(tmp_path / "ddp"), "--config", str(tmp_path / "config.json"), "--device", "cpu", "--no-progress",
        env=env,
    )
    children.append(child)
    assert child.wait(timeout=180) == 0, child.output()
    assert "done:" in child.output()
    ddp = load_checkpoint(tmp_path / "ddp")
    assert ddp["step"] == 4 and ddp["world_size"] == 2

    single = Trainer(config, data, None, embedder=embedder, progress=False)
    single.run()
    for name, value in single.model.state_dict().items():
        torch.testing.assert_close(ddp["model"][name], value, atol=2e-5, rtol=1e-4, msg=name)
