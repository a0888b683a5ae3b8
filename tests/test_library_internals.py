"""Pins what ppsearch relies on in a library's private attribute (ppsearch/library_internals.py)."""
import optuna
import torch

from ppsearch import PushPull2d
from ppsearch.library_internals import study_trial, tensor_version


def test_tensor_version_changes_with_every_in_place_update_of_a_parameter():
    layer = torch.nn.Conv2d(2, 3, 3)
    seen = [tensor_version(layer.weight)]
    with torch.no_grad():
        layer.weight.copy_(torch.randn_like(layer.weight))
    seen.append(tensor_version(layer.weight))
    layer.load_state_dict({k: v.clone() for k, v in layer.state_dict().items()})
    seen.append(tensor_version(layer.weight))
    layer(torch.randn(1, 2, 5, 5)).sum().backward()
    torch.optim.SGD(layer.parameters(), lr=0.1).step()
    seen.append(tensor_version(layer.weight))
    assert len(set(seen)) == 4, seen


def test_an_eval_mode_push_pull_layer_sees_weights_loaded_after_its_first_forward_pass():
    layer = PushPull2d(2, 3, 3, padding=1).eval()
    x = torch.randn(1, 2, 6, 6)
    before = layer(x)
    other = PushPull2d(2, 3, 3, padding=1)
    layer.load_state_dict(other.state_dict())
    torch.testing.assert_close(layer(x), other.eval()(x))
    assert not torch.allclose(before, layer(x))


def test_a_trial_handle_by_number_sets_constraints_that_the_samplers_read():
    study = optuna.create_study(directions=["minimize", "minimize"], sampler=optuna.samplers.TPESampler(seed=0))
    first, second = study.ask(), study.ask()
    study_trial(study, second.number).set_constraint("flops<=1.5x", 0.2)
    study_trial(study, first.number).set_constraint("flops<=1.5x", -0.1)
    study.tell(first.number, [0.3, 0.4])
    study.tell(second.number, [0.1, 0.2])  # better on both, but over the constraint
    assert [t.constraints for t in study.trials] == [{"flops<=1.5x": -0.1}, {"flops<=1.5x": 0.2}]
    assert [t.number for t in study.best_trials] == [first.number]  # Optuna ranks the feasible first
