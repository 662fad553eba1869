"""The space registry (search_spaces/registry.py) and the core's view of a space (tuner/spaces.py):
references, kinds, options, objective inference, changed sources. Nothing here trains."""

from __future__ import annotations

import textwrap

import keras_tuner as kt
import pytest

import search_spaces
from search_spaces import registry
from tuner.config import InvalidSettingError, RunConfig
from tuner.preparation import validate_search
from tuner.spaces import (SpaceChangedError, check_space_unchanged, inferred_objective,
                          make_hypermodel, reported_metrics, resolve_space, space_record)

FUNCTION_SPACE = '''
import keras


def build_model(hp):
    model = keras.Sequential([keras.Input((4,)),
                              keras.layers.Dense(hp.Int("units", 2, 8, default=4)),
                              keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse", metrics=[{metric}])
    return model
'''

CLASS_SPACE = '''
import keras
import keras_tuner


class Classifier(keras_tuner.HyperModel):
    def __init__(self, input_shape=(4,), num_classes=3, width=8):
        super().__init__()
        self.input_shape, self.num_classes, self.width = input_shape, num_classes, width

    def build(self, hp):
        model = keras.Sequential([keras.Input(self.input_shape), keras.layers.Flatten(),
                                  keras.layers.Dense(hp.Int("units", 2, self.width)),
                                  keras.layers.Dense(self.num_classes, activation="softmax")])
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        return model


instance = Classifier(width=4)
not_a_space = 42
'''


def _write(tmp_path, name, text, **format_values):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text.format(**format_values) if format_values else text))
    return path


def _table(tmp_path):
    path = tmp_path / "table.csv"
    path.write_text("a,b,c,d,y\n" + "".join(f"{i},{i % 3},{i % 5},1,{i * 0.5}\n"
                                              for i in range(20)))
    return str(path)


@pytest.fixture
def function_file(tmp_path):
    return _write(tmp_path, "spaces_fn.py", FUNCTION_SPACE, metric='"mae"')


@pytest.fixture
def class_file(tmp_path):
    return _write(tmp_path, "spaces_cls.py", CLASS_SPACE)


def test_a_function_a_class_and_an_instance_resolve_from_a_file(function_file, class_file):
    function = resolve_space(f"{function_file}:build_model")
    assert function.kind == "function" and function.source_file == str(function_file)
    hypermodel = function.make()
    assert isinstance(hypermodel, kt.HyperModel) and hypermodel.name == f"{function_file}:build_model"
    assert hypermodel.build(kt.HyperParameters()).output_shape == (None, 1)
    made = resolve_space(f"{class_file}:Classifier").make({"width": 6}, input_shape=(5,),
                                                          num_classes=4, steps_per_execution=1)
    assert (made.input_shape, made.num_classes, made.width) == ((5,), 4, 6)
    instance = resolve_space(f"{class_file}:instance")
    assert instance.kind == "instance" and instance.make().width == 4


def test_objects_given_from_python_resolve_too(class_file):
    def build_model(hp):
        return None

    space = search_spaces.resolve(build_model)
    assert space.kind == "function" and space.reference.endswith(":test_objects_given_from_python"
                                                                 "_resolve_too.<locals>.build_model")


def test_a_module_path_resolves(monkeypatch, class_file):
    monkeypatch.syspath_prepend(str(class_file.parent))
    assert resolve_space("spaces_cls:Classifier").kind == "class"


@pytest.mark.parametrize("reference, message", [
    ("mpl", "Unknown search space 'mpl'. Expected one of: clock, cnn, mlp"),
    ("missing.py:build_model", "Space 'missing.py:build_model': file missing.py does not exist."),
    ("no_such_module_xyz:f", "cannot import module no_such_module_xyz"),
    ("{cls}:nothing", "has no nothing. It defines: Classifier, instance"),
    ("{cls}:not_a_space", "is a int; expected a build_model(hp) function, a keras_tuner."
                          "HyperModel subclass or an instance of one."),
    ("{cls}:keras", "is a module; expected a build_model(hp) function"),
])
def test_bad_references_say_what_is_wrong(reference, message, class_file):
    with pytest.raises(InvalidSettingError, match=None) as error:
        resolve_space(reference.format(cls=class_file))
    assert message in str(error.value)


def test_a_file_that_fails_to_import_is_named_with_its_error(tmp_path):
    broken = _write(tmp_path, "broken.py", "import keras\nraise RuntimeError('no GPU here')\n")
    with pytest.raises(InvalidSettingError, match=r"importing .*broken.py failed: RuntimeError: "
                                                   r"no GPU here"):
        resolve_space(f"{broken}:build_model")


def test_options_a_space_cannot_take_are_refused(function_file, class_file):
    with pytest.raises(search_spaces.SpaceError, match="a build_model\\(hp\\) function takes none"):
        resolve_space(f"{function_file}:build_model").make({"width": 3})
    with pytest.raises(search_spaces.SpaceError, match="its constructor takes width"):
        resolve_space(f"{class_file}:Classifier").make({"depth": 3})


def test_entry_points_of_other_packages_register_names(monkeypatch, class_file):
    from importlib.metadata import EntryPoint

    monkeypatch.syspath_prepend(str(class_file.parent))
    points = [EntryPoint("mine", "spaces_cls:Classifier", registry.ENTRY_POINT_GROUP),
              EntryPoint("mlp", "search_spaces.mlp:MLPHyperModel", registry.ENTRY_POINT_GROUP)]
    monkeypatch.setattr(registry, "entry_points", lambda group: points)
    monkeypatch.setattr(registry, "_REGISTERED", {})
    monkeypatch.setattr(registry, "_ENTRY_POINTS_READ", False)
    assert search_spaces.available_spaces() == ["mine", "mlp"]
    space = resolve_space("mine")
    assert space.reference == "mine" and space.target.__name__ == "Classifier"


@pytest.mark.parametrize("metric, objective, direction", [
    ('"mae"', "val_mae", "min"),
    ('"mean_squared_error"', "val_mean_squared_error", "min"),
    ('"root_mean_squared_error"', "val_root_mean_squared_error", "min"),
    ('"r2_score"', "val_r2_score", "max"),
])
def test_the_objective_is_the_first_compiled_metric(tmp_path, metric, objective, direction):
    path = _write(tmp_path, f"space_{abs(hash(metric))}.py", FUNCTION_SPACE, metric=metric)
    space = resolve_space(f"{path}:build_model")
    metrics = reported_metrics(space.make())
    assert inferred_objective(space, metrics) == (objective, direction)
    config = validate_search(RunConfig(space=f"{path}:build_model", dataset=_table(tmp_path),
                                       target="y"))
    assert (config.objective, config.direction) == (objective, direction)


def test_a_model_without_metrics_is_searched_on_its_validation_loss(tmp_path):
    path = _write(tmp_path, "loss_only.py", FUNCTION_SPACE.replace(", metrics=[{metric}]", ""))
    assert inferred_objective(resolve_space(f"{path}:build_model"), ["loss"]) == ("val_loss",
                                                                                 "min")


def test_hpsearch_s_own_spaces_keep_their_declared_objective():
    assert inferred_objective(resolve_space("mlp"), ["loss", "accuracy"]) == ("val_accuracy",
                                                                             "max")
    assert inferred_objective(resolve_space("clock"), None) == ("val_cse", "min")


def test_an_objective_the_model_does_not_report_is_refused_before_any_data(function_file,
                                                                          tmp_path):
    config = RunConfig(space=f"{function_file}:build_model", dataset=_table(tmp_path), target="y",
                       objective="val_accuracy")
    with pytest.raises(InvalidSettingError, match="Objective 'val_accuracy' is not a metric of"):
        validate_search(config)


@pytest.mark.parametrize("body, message", [
    ("def build_model(hp):\n    raise ValueError('bad layer')\n",
     "failed to build its default model: ValueError: bad layer"),
    ("def build_model(hp):\n    return 3\n", "returned a int from build(hp); expected a compiled"),
    ("import keras\ndef build_model(hp):\n    return keras.Sequential([keras.Input((2,)), "
     "keras.layers.Dense(1)])\n", "returned a model that is not compiled"),
])
def test_a_space_that_does_not_build_a_compiled_model_is_refused(tmp_path, body, message):
    path = _write(tmp_path, "bad_space.py", body)
    with pytest.raises(InvalidSettingError, match=None) as error:
        validate_search(RunConfig(space=f"{path}:build_model", dataset=_table(tmp_path),
                                  target="y"))
    assert message in str(error.value) and "bad_space.py:build_model" in str(error.value)


def test_a_changed_source_is_refused_naming_the_changed_hyperparameters(tmp_path, function_file):
    from tuner import rundir

    run = tmp_path / "run"
    run.mkdir()
    space = resolve_space(f"{function_file}:build_model")
    hp = kt.HyperParameters()
    space.make().build(hp)
    rundir.write_json(run / rundir.SPACE_FILE, hp.get_config())
    rundir.write_yaml(run / rundir.RUN_FILE, {"space": space_record(space)})
    assert check_space_unchanged(run, space, space.make()) is None
    function_file.write_text(function_file.read_text().replace('"units", 2, 8', '"units", 2, 16'))
    changed = resolve_space(f"{function_file}:build_model")
    hypermodel = make_hypermodel(RunConfig(space=changed.reference), changed, (4,), None)
    with pytest.raises(SpaceChangedError, match="declared differently: units") as error:
        check_space_unchanged(run, changed, hypermodel)
    assert str(function_file) in str(error.value) and "--accept-changed-space" in str(error.value)
    warning = check_space_unchanged(run, changed, hypermodel, accept_changed_space=True)
    assert warning.startswith("Warning: The source of space")


def test_a_worker_started_elsewhere_finds_the_file_run_yaml_recorded(function_file, tmp_path,
                                                                      monkeypatch):
    from tuner.spaces import resolve_recorded_space

    monkeypatch.chdir(function_file.parent)
    config = RunConfig(space=f"{function_file.name}:build_model")
    document = {"space": space_record(resolve_space(config))}
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the relative reference no longer resolves here
    space = resolve_recorded_space(config, document)
    assert space.reference == config.space and space.source_file == str(function_file)
    with pytest.raises(InvalidSettingError, match="does not exist"):
        resolve_recorded_space(config, {})
