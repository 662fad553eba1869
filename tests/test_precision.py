"""``--precision`` reaches every model a search builds, although KerasTuner clears Keras's state."""

from __future__ import annotations

import json

import keras
import keras_tuner as kt
import pytest

import search_spaces
from search_spaces.mlp import MLPHyperModel
from search_spaces.precision import active_precision, precision_policy
from tuner.config import RunConfig
from tuner.search import run_search


def _hidden_and_output_dtypes(model: keras.Model) -> tuple[set[str], str]:
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    return {layer.compute_dtype for layer in dense[:-1]}, dense[-1].compute_dtype


@pytest.mark.parametrize("space, input_shape", [("mlp", (8, 8, 1)), ("cnn", (16, 16, 1)),
                                                ("clock", (32, 32, 1))])
def test_a_build_after_clear_session_keeps_the_block_s_policy(space, input_shape):
    kwargs = {"num_classes": 10} if space != "clock" else {}
    hypermodel = search_spaces.get(space, input_shape=input_shape, **kwargs)
    with precision_policy("mixed_bfloat16") as resolved:
        assert resolved == active_precision() == "mixed_bfloat16"
        keras.backend.clear_session()  # what KerasTuner does before every trial's build
        assert keras.mixed_precision.global_policy().name == "float32"
        model = hypermodel.build(kt.HyperParameters())
        assert model.dtype_policy.name == "mixed_bfloat16"
        assert "bfloat16" in {layer.compute_dtype for layer in model.layers}
        assert {output.dtype for output in model.outputs} == {"float32"}
    assert active_precision() is None
    assert keras.mixed_precision.global_policy().name == "float32"
    # Outside any block a build leaves the policy the caller set alone.
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        assert hypermodel.build(kt.HyperParameters()).dtype_policy.name == "mixed_float16"
    finally:
        keras.mixed_precision.set_global_policy("float32")


class _RecordingMLP(MLPHyperModel):
    """The MLP space, noting the dtypes of the model each trial trains."""

    seen: list[tuple[set[str], str]] = []

    def fit(self, hp, model, *args, **kwargs):
        self.seen.append(_hidden_and_output_dtypes(model))
        return super().fit(hp, model, *args, **kwargs)


@pytest.mark.parametrize("precision, hidden", [("mixed_bfloat16", "bfloat16"),
                                               ("float32", "float32")])
def test_every_trial_of_a_search_trains_under_its_precision(precision, hidden, tiny_data_dir,
                                                            tmp_path):
    search_spaces.register("recording_mlp", _RecordingMLP)
    _RecordingMLP.seen = []
    result = run_search(
        RunConfig(space="recording_mlp", tuner="random", max_trials=2, max_epochs=1,
                  subset=None, precision=precision),
        tmp_path / "run",
        data_dir=tiny_data_dir,
    )
    assert result.precision == precision
    assert (result.trials["status"] == "COMPLETED").all()
    assert len(_RecordingMLP.seen) >= 2
    assert all(dtypes == ({hidden}, "float32") for dtypes in _RecordingMLP.seen)
    # The trial log says what each trial computed in.
    logged = [json.loads(line) for line in
              (tmp_path / "run" / "trial_log.jsonl").read_text().splitlines()]
    assert len(logged) == 2 and {entry["compute_dtype"] for entry in logged} == {hidden}
    assert keras.mixed_precision.global_policy().name == "float32"
