"""Where a search space comes from: a registered name, a Python file or a module.

Every space enters the core through ``resolve``, the built-in ones too: ``mlp``, ``cnn`` and
``clock`` are declared in the ``hpsearch.spaces`` entry-point group of hpsearch's own package
metadata, exactly as another installed package adds its spaces. A reference is one of:

- a registered name (``mlp``; entry points, or ``register`` from Python);
- ``path/to/file.py:NAME`` (the file is imported as a module of its own);
- ``package.module:NAME``.

``NAME`` is a KerasTuner ``build_model(hp)`` function, a ``keras_tuner.HyperModel`` subclass or an
instance of one. A subclass is constructed with the space options (``--space-arg key=value``) and,
when its constructor has parameters of those names, the data's ``input_shape`` and
``num_classes``; hpsearch's own spaces also take ``steps_per_execution``.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import importlib
import importlib.util
import inspect
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Callable

ENTRY_POINT_GROUP = "hpsearch.spaces"
# What the data tells a space class, passed to every constructor parameter of that name.
DATA_FACTS = ("input_shape", "num_classes", "steps_per_execution")

# name -> a "module:attr" string or the object itself (``register``).
_REGISTERED: dict[str, Any] = {}
_ENTRY_POINTS_READ = False


class SpaceError(ValueError):
    """A space reference cannot be resolved, imported or used (the message says why and how to
    fix it)."""


def register(name: str, space: Any) -> None:
    """Make a space available under ``name``: a ``build_model(hp)`` function, a HyperModel class or
    instance, or its ``"module:attr"`` path (imported on first use)."""
    _read_entry_points()
    _REGISTERED[name] = space


def available_spaces() -> list[str]:
    """Registered space names, sorted (entry points included; nothing is imported)."""
    _read_entry_points()
    return sorted(_REGISTERED)


def _read_entry_points() -> None:
    global _ENTRY_POINTS_READ
    if _ENTRY_POINTS_READ:
        return
    _ENTRY_POINTS_READ = True
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        _REGISTERED.setdefault(entry.name, entry.value)


def is_reference(text: str) -> bool:
    """Whether ``text`` names a space by path or module (``file.py:NAME``, ``pkg.mod:NAME``)
    rather than by a registered name."""
    return ":" in text


@dataclasses.dataclass(frozen=True)
class Space:
    """A resolved search space: what its reference names and how to make its HyperModel.

    Attributes:
        reference: as the user wrote it (``mlp``, ``examples/f.py:build_model``).
        target: the function, HyperModel subclass or instance it names.
        source_file: the Python file that defines it (None when not found).
    """

    reference: str
    target: Any
    source_file: str | None = None

    @property
    def kind(self) -> str:
        """"function", "class" or "instance"."""
        import keras_tuner as kt

        if isinstance(self.target, type):
            return "class"
        if isinstance(self.target, kt.HyperModel):
            return "instance"
        return "function"

    @property
    def space_class(self) -> type | None:
        """The HyperModel class (of an instance too); None for a function."""
        if self.kind == "function":
            return None
        return self.target if self.kind == "class" else type(self.target)

    def attribute(self, name: str, default: Any = None) -> Any:
        """A class-level attribute of the space (hpsearch's spaces declare ``objective``,
        ``baseline_name``...); ``default`` for functions and classes without it."""
        owner = self.space_class
        return getattr(owner, name, default) if owner is not None else default

    def option_names(self) -> set[str] | None:
        """Constructor parameters a space option may set (None: any, the class takes
        ``**kwargs``); empty for functions and instances."""
        if self.kind != "class":
            return set()
        parameters = inspect.signature(self.target.__init__).parameters
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
            return None
        return {name for name in parameters if name != "self"} - set(DATA_FACTS)

    def check_options(self, options: dict[str, Any]) -> None:
        """Raises SpaceError for options the space cannot take."""
        if not options:
            return
        accepted = self.option_names()
        if accepted is None:
            return
        unknown = sorted(set(options) - accepted)
        if unknown:
            what = ("a build_model(hp) function takes none" if self.kind == "function" else
                    "an instance is used as it is; pass the class to give it options"
                    if self.kind == "instance" else
                    f"its constructor takes {', '.join(sorted(accepted)) or 'none'}")
            raise SpaceError(f"Space '{self.reference}' has no option {', '.join(unknown)}: "
                             f"{what}.")

    def make(self, options: dict[str, Any] | None = None, **facts: Any):
        """The space's KerasTuner HyperModel, named after the reference.

        Args:
            options: constructor arguments of a HyperModel subclass (``--space-arg``).
            **facts: ``input_shape``, ``num_classes``, ``steps_per_execution`` and the like,
                passed to a constructor that has parameters of those names (options win).

        Raises:
            SpaceError: options it cannot take, or a constructor that refuses them.
        """
        import keras_tuner as kt

        options = dict(options or {})
        self.check_options(options)
        if self.kind == "function":
            hypermodel = _function_hypermodel_class()(self.target, self.reference)
        elif self.kind == "instance":
            hypermodel = copy.copy(self.target)
        else:
            parameters = inspect.signature(self.target.__init__).parameters
            takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
            arguments = {name: value for name, value in facts.items()
                         if value is not None and (name in parameters or (
                             takes_any and name in ("input_shape", "num_classes")))}
            arguments.update(options)
            try:
                hypermodel = self.target(**arguments)
            except (TypeError, ValueError) as error:
                raise SpaceError(f"Space '{self.reference}' cannot be constructed with "
                                 f"{_arguments_text(arguments)}: {error}") from None
        if not isinstance(hypermodel, kt.HyperModel):
            raise SpaceError(f"Space '{self.reference}' made a {type(hypermodel).__name__}, not a "
                             "keras_tuner.HyperModel.")
        hypermodel.name = self.reference
        return hypermodel

    def source_hash(self) -> str | None:
        """sha256 (16 hex digits) of the file that defines the space, None when unknown."""
        if not self.source_file or not Path(self.source_file).is_file():
            return None
        return hashlib.sha256(Path(self.source_file).read_bytes()).hexdigest()[:16]


def _function_hypermodel_class():
    import keras_tuner as kt

    global _FUNCTION_CLASS
    if _FUNCTION_CLASS is None:
        class FunctionHyperModel(kt.HyperModel):
            """A plain ``build_model(hp)`` as a HyperModel (what KerasTuner does with one)."""

            def __init__(self, build_model: Callable, name: str):
                super().__init__(name=name)
                self.build_model = build_model

            def build(self, hp):
                return self.build_model(hp)

        _FUNCTION_CLASS = FunctionHyperModel
    return _FUNCTION_CLASS


_FUNCTION_CLASS = None


def resolve(reference: Any) -> Space:
    """The space a reference names.

    Args:
        reference: a registered name, ``path/file.py:NAME``, ``package.module:NAME``, or the
            function, HyperModel class or instance itself (from Python).

    Raises:
        SpaceError: an unknown name (the registered ones are listed), a file or module that does
            not exist or fails to import (the cause is named), a missing NAME, or a NAME that is
            neither a function nor a HyperModel.
    """
    if not isinstance(reference, str):
        return _space_of_object(reference)
    text = reference.strip()
    if not is_reference(text):
        _read_entry_points()
        if text not in _REGISTERED:
            raise SpaceError(
                f"Unknown search space '{text}'. Expected one of: {', '.join(available_spaces())}, "
                "or your own as path/to/file.py:NAME or package.module:NAME.")
        registered = _REGISTERED[text]
        if isinstance(registered, str):
            space = _import_reference(registered, shown=text)
            return dataclasses.replace(space, reference=text)
        return dataclasses.replace(_space_of_object(registered), reference=text)
    return _import_reference(text, shown=text)


def _space_of_object(target: Any) -> Space:
    _check_target(target, _object_name(target))
    owner = type(target) if _is_instance(target) else target
    module = sys.modules.get(getattr(owner, "__module__", ""))
    return Space(reference=_object_name(target), target=target,
                 source_file=getattr(module, "__file__", None))


def _object_name(target: Any) -> str:
    owner = target if not _is_instance(target) else type(target)
    return f"{getattr(owner, '__module__', '?')}:{getattr(owner, '__qualname__', repr(owner))}"


def _is_instance(target: Any) -> bool:
    import keras_tuner as kt

    return isinstance(target, kt.HyperModel)


def _import_reference(text: str, shown: str) -> Space:
    location, _, name = text.rpartition(":")
    if not location or not name:
        raise SpaceError(f"Space '{shown}': expected path/to/file.py:NAME or package.module:NAME.")
    if location.endswith(".py") or "/" in location or "\\" in location:
        path = Path(location)
        if not path.is_file():
            raise SpaceError(f"Space '{shown}': file {location} does not exist.")
        module = _import_file(path, shown)
        source = str(path.resolve())
    else:
        try:
            module = importlib.import_module(location)
        except ImportError as error:
            raise SpaceError(f"Space '{shown}': cannot import module {location} ({error}).") from None
        except Exception as error:  # the user's module itself failed while importing
            raise SpaceError(f"Space '{shown}': importing {location} failed: "
                             f"{type(error).__name__}: {error}") from None
        source = getattr(module, "__file__", None)
    target = module
    for part in name.split("."):
        if not hasattr(target, part):
            defined = sorted(key for key, value in vars(module).items()
                             if not key.startswith("_") and _usable(value))
            raise SpaceError(f"Space '{shown}': {location} has no {name}. "
                             f"It defines: {', '.join(defined) or 'no function or HyperModel'}.")
        target = getattr(target, part)
    _check_target(target, shown)
    return Space(reference=shown, target=target, source_file=source)


def _import_file(path: Path, shown: str):
    resolved = path.resolve()
    digest = hashlib.sha256(str(resolved).encode()).hexdigest()[:12]
    module_name = f"hpsearch_space_{resolved.stem}_{digest}"
    content = hashlib.sha256(resolved.read_bytes()).hexdigest()
    loaded = sys.modules.get(module_name)
    # Imported again once the file changed (a notebook session that edits its space).
    if loaded is not None and getattr(loaded, "__hpsearch_source_hash__", None) == content:
        return loaded
    spec = importlib.util.spec_from_file_location(module_name, resolved)
    module = importlib.util.module_from_spec(spec)
    module.__hpsearch_source_hash__ = content
    # Registered before it runs, as ``import`` does: dataclasses and pickling look it up.
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as error:  # the user's file failed while importing
        del sys.modules[module_name]
        raise SpaceError(f"Space '{shown}': importing {path} failed: "
                         f"{type(error).__name__}: {error}") from None
    return module


def _usable(value: Any) -> bool:
    import keras_tuner as kt

    if isinstance(value, type):
        return issubclass(value, kt.HyperModel) and value is not kt.HyperModel
    return isinstance(value, kt.HyperModel) or inspect.isfunction(value)


def _check_target(target: Any, shown: str) -> None:
    import keras_tuner as kt

    if isinstance(target, type):
        if not issubclass(target, kt.HyperModel):
            raise SpaceError(f"Space '{shown}' is the class {target.__name__}, which is not a "
                             "keras_tuner.HyperModel subclass.")
        return
    if isinstance(target, kt.HyperModel) or callable(target):
        return
    raise SpaceError(f"Space '{shown}' is a {type(target).__name__}; expected a build_model(hp) "
                     "function, a keras_tuner.HyperModel subclass or an instance of one.")


def _arguments_text(arguments: dict[str, Any]) -> str:
    return ", ".join(f"{key}={value!r}" for key, value in arguments.items()) or "no arguments"
