"""Training loop: determinism, bit-exact resume, logs, BC baseline, CLI train -> export."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.trainer_mdp import state_image, tiny_config, write_mdp
from qt_common.cli import VERBS
from qt_common.cli import main as qt_main
from qt_common.dataset import Dataset
from qt_policy_node.decoder import PolicyDecoder
from qt_trainer.checkpoint import load_checkpoint
from qt_trainer.synthetic import write_synthetic_dataset
from qt_trainer.train import Trainer


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    return write_synthetic_dataset(tmp_path_factory.mktemp("data") / "syn", episodes=6, length=6,
                                   image_shape=(16, 16, 3), proprio_dim=2, seed=3)


def _config(steps: int, **overrides):
    return tiny_config(steps, batch_size=16, log_every=5, target_update="polyak", tau=0.1, augment_shift=2,
                       lr_schedule="cosine", warmup_steps=3, weight_decay=0.01, **overrides)


def _states_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_fixed_seed_is_deterministic(synthetic: Dataset, embedder) -> None:
    runs = []
    for seed in (5, 5, 6):
        trainer = Trainer(_config(12, seed=seed), synthetic, None, embedder=embedder, progress=False)
        trainer.run()
        runs.append(trainer.model.state_dict())
    assert _states_equal(runs[0], runs[1])
    assert not _states_equal(runs[0], runs[2])


def test_resume_continues_bit_exactly(synthetic: Dataset, embedder, tmp_path: Path) -> None:
    straight = Trainer(_config(16, n_step=2), synthetic, tmp_path / "a", embedder=embedder, progress=False)
    straight.run()
    first = Trainer(_config(16, n_step=2), synthetic, tmp_path / "b", embedder=embedder, progress=False)
    first.run(steps=7)
    assert load_checkpoint(tmp_path / "b")["step"] == 7
    resumed = Trainer(_config(16, n_step=2), synthetic, tmp_path / "b", embedder=embedder, resume=True,
                      progress=False)
    assert resumed.step == 7
    resumed.run()
    assert resumed.step == 16
    assert _states_equal(straight.model.state_dict(), resumed.model.state_dict())
    assert straight.target is not None and resumed.target is not None
    assert _states_equal(straight.target.state_dict(), resumed.target.state_dict())
    a, b = straight.optimizer.state_dict()["state"], resumed.optimizer.state_dict()["state"]
    assert all(_states_equal(a[k], b[k]) for k in a)


def test_tensorboard_scalars_are_written(synthetic: Dataset, embedder, tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    trainer = Trainer(_config(10), synthetic, tmp_path / "run", embedder=embedder, progress=False)
    trainer.run()
    trainer.close()
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    for tag in ("loss/total", "loss/td", "loss/conservative", "q/data", "q/unseen", "target/mean", "target/max",
                "target/mc_bound_active", "lr", "grad_norm", "samples_per_s"):
        assert tag in tags, tag
    assert [e.step for e in events.Scalars("loss/td")] == [5, 10]


def test_behaviour_cloning_baseline_imitates_the_data(tmp_path: Path, train_mdp) -> None:
    """Same backbone, cross-entropy: greedy decoding returns the most frequent data action."""
    common, rare = (70, 180), (200, 20)
    data = write_mdp(tmp_path / "bc", [([0], [common], "failure")] * 3 + [([0], [rare], "success")], 0.9, repeat=2)
    model = replace(tiny_config(1).model, algorithm="bc")
    trainer = train_mdp(data, 150, model=model, bc_label_sigma=0.0)
    assert trainer.target is None
    with torch.no_grad():
        bins, prob = trainer.model.eval().greedy(torch.from_numpy(state_image(0)[None]), trainer.embeddings[:1])
    assert bins[0].tolist() == list(common)
    assert 0.5 < prob[0, 0] < 1.0  # softmax probability of the chosen bin (~0.75 in the data)


def test_soft_bc_targets_keep_the_mode_and_spread_over_neighbouring_bins(tmp_path: Path, train_mdp) -> None:
    """With a Gaussian target over bins the greedy action is still the data's most frequent one,
    and the probability mass sits on its neighbours (the bins are ordered values)."""
    common, rare = (70, 180), (200, 20)
    data = write_mdp(tmp_path / "bc", [([0], [common], "failure")] * 3 + [([0], [rare], "success")], 0.9, repeat=2)
    trainer = train_mdp(data, 150, model=replace(tiny_config(1).model, algorithm="bc"), bc_label_sigma=2.0)
    with torch.no_grad():
        image = torch.from_numpy(state_image(0)[None])
        bins, _ = trainer.model.eval().greedy(image, trainer.embeddings[:1])
        logits = trainer.model(image, trainer.embeddings[:1], torch.tensor([list(common)]))
    assert bins[0].tolist() == list(common)
    probs = logits.softmax(-1)[0, 0]
    assert probs[common[0] - 3 : common[0] + 4].sum() > 0.6
    assert probs[common[0]] < 0.5


def test_action_prediction_head_learns_the_behaviour_while_greedy_q_follows_the_return(tmp_path: Path, train_mdp,
                                                                                        embedder) -> None:
    """The Q-T's action-prediction auxiliary is reward-free: its head predicts the data's most
    frequent action (which failed), while greedy decoding (the Q head) picks the rare action
    that succeeded. BC gets no such head."""
    common, rare = (70, 180), (200, 20)
    data = write_mdp(tmp_path / "aux", [([0], [common], "failure")] * 3 + [([0], [rare], "success")], 0.9, repeat=2)
    trainer = train_mdp(data, 300, action_aux_weight=1.0)
    model = trainer.model.eval()
    assert model.cfg.action_aux
    with torch.no_grad():
        image = torch.from_numpy(state_image(0)[None])
        bins, _ = model.greedy(image, trainer.embeddings[:1])
        _, _, predicted = model(image, trainer.embeddings[:1], torch.tensor([list(common)]), with_aux=True)
    assert bins[0].tolist() == list(rare)
    assert predicted[0].argmax(-1).tolist() == list(common)
    bc = Trainer(tiny_config(1, action_aux_weight=1.0, model=replace(tiny_config(1).model, algorithm="bc")), data,
                 None, embedder=embedder, progress=False)
    assert not bc.model.cfg.action_aux


def test_init_from_takes_the_weights_of_another_run(tmp_path: Path, train_mdp, embedder) -> None:
    """A Q-T started from a BC run (same architecture, other loss) begins with every weight of
    the BC run, its target network too, but this dataset's input statistics."""
    data = write_mdp(tmp_path / "d", [([0, 1], [(70, 180), (200, 20)], "success")], 0.9)
    bc = train_mdp(data, 20, model=replace(tiny_config(1).model, algorithm="bc"))
    bc.save(tmp_path / "bc.pt")
    qt = Trainer(tiny_config(1, init_from=str(tmp_path / "bc.pt")), data, None, embedder=embedder, progress=False)
    source, statistics = bc.model.state_dict(), {"proprio_mean", "proprio_std", "state_mean", "state_std"}
    assert set(qt.initialised_from) == set(source) - statistics
    for name in qt.initialised_from:
        assert torch.equal(qt.model.state_dict()[name], source[name])
        assert torch.equal(qt.target.state_dict()[name], source[name])
    with pytest.raises(ValueError, match="no file"):
        Trainer(tiny_config(1, init_from=str(tmp_path / "missing.pt")), data, None, embedder=embedder, progress=False)


def test_cli_train_then_export(synthetic: Dataset, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "train" in VERBS and "export" in VERBS
    run = tmp_path / "run"
    code = qt_main(["train", str(synthetic.path), "--out", str(run), "--model-size", "tiny", "--steps", "6",
                    "--batch-size", "8", "--threads", "1", "--no-progress", "--log-every", "3"])
    assert code == 0
    assert json.loads((run / "train_config.json").read_text())["steps"] == 6
    code = qt_main(["export", str(run), "--name", "cli", "--models-dir", str(tmp_path / "models"),
                    "--instruction", "stack the cubes", "--no-text-encoder"])
    assert code == 0
    card = json.loads((tmp_path / "models" / "cli" / "policy.json").read_text())
    assert card["training"]["steps"] == 6 and card["training"]["data_digest"] == synthetic.digest()
    assert card["training"]["command"].startswith("qt train")
    assert set(card["text_encoder"]["embeddings"]) == {*synthetic.instructions, "stack the cubes"}
    decoder = PolicyDecoder(tmp_path / "models" / "cli", expected_action_spec_digest=synthetic.action_spec.digest(),
                            expected_image_size=(16, 16))
    result = decoder.decode(synthetic.images[0], decoder.known_embedding(synthetic.instructions[0]),
                            np.zeros(2, np.float32))
    assert result.bins.shape == (5,)
    assert qt_main(["train", str(tmp_path / "nowhere"), "--out", str(run)]) == 1
    assert "not a dataset" in capsys.readouterr().err


def test_state_mode_with_success_checks_keeps_the_best_checkpoint(tmp_path: Path, embedder) -> None:
    """qt train --obs-mode state --eval-every: success checks on validation layouts are logged,
    best.pt is kept and is what qt export takes by default."""
    from helpers.sim_dataset import write_expert_dataset
    from qt_trainer.export import resolve_checkpoint

    data = write_expert_dataset(tmp_path / "data", ("pick/red", "pick/blue"), 4)
    model = replace(tiny_config(1).model, algorithm="bc", obs_mode="state")
    config = tiny_config(20, model=model, eval_every=10, eval_episodes_per_task=1, eval_horizon=6,
                         checkpoint_every=10)
    trainer = Trainer(config, data, tmp_path / "run", embedder=embedder, progress=False)
    trainer.run()
    trainer.close()
    assert trainer.model.cfg.state_dim == 35 and trainer.model.num_obs == 5
    log = [json.loads(line) for line in (tmp_path / "run" / "eval_log.jsonl").read_text().splitlines()]
    assert [entry["step"] for entry in log] == [10, 20]
    assert all(entry["episodes"] == 2 and set(entry["per_task"]) == {"pick/red", "pick/blue"} for entry in log)
    assert trainer.best is not None and trainer.best["step"] in (10, 20)
    assert resolve_checkpoint(tmp_path / "run") == tmp_path / "run" / "best.pt"
    assert resolve_checkpoint(tmp_path / "run", "last") == tmp_path / "run" / "checkpoint.pt"
    # The standardisation statistics come from the data.
    np.testing.assert_allclose(trainer.model.proprio_mean.numpy(), np.asarray(data.proprio).mean(0), atol=1e-5)


def test_object_tokens_read_the_aux_prediction_and_leave_it_to_the_aux_loss(tmp_path: Path, embedder) -> None:
    """--obs-tokens both: the prefix gains one token per object (last), built from the aux head's
    predicted positions; the action loss does not train the aux head (stop-gradient: the tokens
    carry positions, not whatever helps the loss); a run without object tokens initialises it,
    prefix positions included. Without object poses in the data: a clear error."""
    from helpers.sim_dataset import write_expert_dataset

    data = write_expert_dataset(tmp_path / "data", ("pick/red",), 2)
    plain_model = replace(tiny_config(1).model, algorithm="bc")
    plain = Trainer(tiny_config(3, model=plain_model), data, tmp_path / "plain", embedder=embedder, progress=False)
    plain.run()
    plain.close()
    model = replace(plain_model, algorithm="q_transformer", obs_tokens="both")
    trainer = Trainer(tiny_config(2, model=model, init_from=str(tmp_path / "plain" / "checkpoint.pt")), data,
                      tmp_path / "run", embedder=embedder, progress=False)
    net = trainer.model
    assert net.cfg.aux_dim == 15 and trainer.aux_targets.shape == (len(data), 15)
    assert net.num_prefix == plain.model.num_prefix + 5
    torch.testing.assert_close(net.prefix_pos[: plain.model.num_prefix], plain.model.prefix_pos)
    assert {"aux_head.weight", "prefix_pos"} <= set(trainer.initialised_from)
    image = torch.from_numpy(np.array(data.images[:4]))
    proprio = torch.from_numpy(np.array(data.proprio[:4], np.float32))
    embedding = trainer.embeddings[:1].expand(4, -1)
    net.zero_grad()
    net(image, embedding, torch.zeros(4, net.cfg.num_dims, dtype=torch.long), proprio).sum().backward()
    assert net.aux_head.weight.grad is None or not net.aux_head.weight.grad.any()
    assert net.object_encoder.inp.weight.grad.abs().sum() > 0
    with torch.no_grad():  # what the object tokens read is the aux head's prediction
        _, predicted, _ = net(image, embedding, torch.zeros(4, net.cfg.num_dims, dtype=torch.long), proprio,
                              with_aux=True)
        torch.testing.assert_close(net.object_positions(image, embedding, proprio), predicted)
    trainer.run()
    trainer.close()
    no_poses = write_mdp(tmp_path / "m", [([0], [(1, 2)], "success")], 0.9)
    with pytest.raises(ValueError, match=r"obs_tokens: object tokens need .*object_poses"):
        Trainer(tiny_config(1, model=model), no_poses, tmp_path / "run2", embedder=embedder, progress=False)


def test_time_budget_stops_training(tmp_path: Path, train_mdp) -> None:
    data = write_mdp(tmp_path / "m", [([0], [(1, 2)], "success")], 0.9)
    trainer = train_mdp(data, 10**6, time_budget_s=0.5)
    assert 0 < trainer.step < 10**6 and trainer.wall_time_s >= 0.5
