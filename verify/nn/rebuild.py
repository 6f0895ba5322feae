"""A saved ``nn.Sequential`` rebuilt from its state dict, its layers read by the grammar of `verify.nn.grammar`.

A state dict records tensors, not layer types, so the architecture is inferred from the keys
``<layer index>.<name>`` of an ``nn.Sequential`` and the tensors' shapes (`read_layers`): a 2-D
``weight`` is a Linear, a ``weight``/``bias`` with ``running_mean``/``running_var`` a BatchNorm1d
(the entries `verify.nn.grammar.LINEAR` and `verify.nn.grammar.NORM` list). Layers without
parameters leave gaps in the indices; each gap is read as a ReLU (a gap before the first layer as
an ``nn.Flatten``), and the layers and gaps are walked by the target or the frozen grammar
(`target_module`, `frozen_module`, docs/design.md §1). Keys of named submodules (``fc1.weight``)
are read in key order with a ReLU before every Linear but the first; `layout_assumptions` says
what was assumed.
Every problem raises `verify.nn.state_dict.StateDictError` naming the file (``where``), the layer
index and, where there is one, the key.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from verify.nn.grammar import FROZEN, LAYERNORM_IN_STATE_DICT, LINEAR, NORM, RELU, TARGET, Grammar, LayerKind, walk
from verify.nn.state_dict import StateDictError

__all__ = ["SavedLayer", "frozen_module", "layout_assumptions", "read_layers", "target_module"]


@dataclass(frozen=True)
class SavedLayer:
    """One layer with parameters in a saved ``nn.Sequential``.

    Attributes
    ----------
    index : int
        Its position in the Sequential (the integer in its keys; for named submodules, its position
        in key order with a gap before every Linear but the first, where a ReLU is assumed).
    kind : str
        ``"Linear"`` or ``"BatchNorm1d"``.
    keys : dict
        Parameter name (``weight``, ``bias``, ``running_mean``, …) -> key in the state dict.
    in_features, out_features : int
        Input and output widths (equal for BatchNorm1d).
    label : str
        How messages name it: the index, or the submodule name (``"fc1"``).
    """

    index: int
    kind: str
    keys: dict[str, str] = field(compare=False)
    in_features: int
    out_features: int
    label: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if not self.label:
            object.__setattr__(self, "label", str(self.index))


_KEY = re.compile(r"^(?P<prefix>(?:.*\.)?)(?P<index>\d+)\.(?P<name>[^.]+)$")
_NAMES = frozenset(LINEAR.entries + NORM.entries)
_KINDS = {kind.name: kind for kind in (LINEAR, NORM)}


def _shape(tensor: Any) -> str:
    return "(" + ", ".join(str(s) for s in tensor.shape) + ("," if tensor.dim() == 1 else "") + ")"


def _classify(index: int, entries: dict[str, Any], keys: dict[str, str], where: str, label: str = "") -> SavedLayer:
    label = label or str(index)
    unknown = sorted(set(entries) - _NAMES)
    if unknown:
        raise StateDictError(
            f"{where} layer {label}: unexpected entry {keys[unknown[0]]!r}; only Linear (weight, bias) and "
            "BatchNorm1d (weight, bias, running_mean, running_var) layers are supported"
        )
    weight, bias = entries.get("weight"), entries.get("bias")
    if any(name in entries for name in NORM.reads):
        missing = [name for name in NORM.reads if name not in entries]
        if missing:
            raise StateDictError(f"{where} layer {label}: BatchNorm1d statistics without {missing[0]!r}")
        if any(name not in entries for name in NORM.tunes):
            raise StateDictError(
                f"{where} layer {label}: a BatchNorm1d without weight and bias (affine=False) has nothing to tune; "
                "build it with affine=True"
            )
        width = entries["running_mean"].shape[0] if entries["running_mean"].dim() == 1 else -1
        for name in NORM.tunes + NORM.reads:
            if entries[name].dim() != 1 or entries[name].shape[0] != width:
                raise StateDictError(
                    f"{where} layer {label}: BatchNorm1d entry {keys[name]!r} has shape {_shape(entries[name])}, "
                    f"expected ({width},) like its running_mean"
                )
        return SavedLayer(index, NORM.name, keys, width, width, label)
    if weight is None:
        raise StateDictError(f"{where} layer {label}: {keys['bias']!r} without a weight is no supported layer")
    if weight.dim() == 1:
        raise StateDictError(
            f"{where} layer {label}: a 1-D weight {_shape(weight)} without running_mean/running_var is a LayerNorm "
            f"(or GroupNorm, RMSNorm, BatchNorm1d with track_running_stats=False); {LAYERNORM_IN_STATE_DICT}"
        )
    if weight.dim() >= 3:
        raise StateDictError(
            f"{where} layer {label}: {keys['weight']!r} has a {weight.dim()}-D shape {_shape(weight)}, a "
            f"convolution (Conv{weight.dim() - 2}d); a state dict does not record a convolution's stride, padding, "
            "dilation or the pooling between layers, so it cannot be read here: build the nn.Sequential in Python, "
            "load_state_dict into it and call verify.nn.fit_norm_layers (verify.nn.frozen_like builds the frozen "
            "network; README, 'Convolutional networks')"
        )
    if weight.dim() != 2:
        raise StateDictError(
            f"{where} layer {label}: {keys['weight']!r} is a scalar; expected a Linear weight (out, in)"
        )
    if bias is not None and (bias.dim() != 1 or bias.shape[0] != weight.shape[0]):
        raise StateDictError(
            f"{where} layer {label}: Linear bias {keys['bias']!r} has shape {_shape(bias)}, expected "
            f"({weight.shape[0]},) for weight {_shape(weight)}"
        )
    return SavedLayer(index, LINEAR.name, keys, int(weight.shape[1]), int(weight.shape[0]), label)


def read_layers(state: Mapping[str, Any], where: str) -> list[SavedLayer]:
    """The layers with parameters of a saved model, in order; StateDictError naming the key otherwise.

    Keys ``<prefix><index>.<name>`` with one prefix shared by all keys (``""``, ``"module."``,
    ``"net."``, …) are an ``nn.Sequential``: layers by index, gaps where layers without parameters
    stand. Any other keys (named submodules, ``fc1.weight``; or several Sequentials) are read in key
    order, which is the order torch registers submodules in, with a gap before every Linear but the
    first: a ReLU is assumed there (`layout_assumptions` says so). ``where`` names the file in messages.
    """
    groups: dict[int, tuple[dict[str, Any], dict[str, str]]] = {}
    prefixes = set()
    for key, value in state.items():
        match = _KEY.match(key)
        if match is None:
            return _read_named(state, where)
        prefixes.add(match["prefix"])
        entries, keys = groups.setdefault(int(match["index"]), ({}, {}))
        entries[match["name"]], keys[match["name"]] = value, key
    if len(prefixes) > 1:
        return _read_named(state, where)
    return [_classify(index, *groups[index], where) for index in sorted(groups)]


def _read_named(state: Mapping[str, Any], where: str) -> list[SavedLayer]:
    """Layers of named submodules (``fc1.weight``), in key order, with a gap (an assumed ReLU) before every
    Linear but the first."""
    groups: dict[str, tuple[dict[str, Any], dict[str, str]]] = {}
    for key, value in state.items():
        module, dot, name = key.rpartition(".")
        if not dot:
            raise StateDictError(
                f"{where}: key {key!r} names no layer ('<layer>.<name>' such as '0.weight' or 'fc1.weight')"
            )
        entries, keys = groups.setdefault(module, ({}, {}))
        entries[name], keys[name] = value, key
    layers, index = [], 0
    for position, (module, (entries, keys)) in enumerate(groups.items()):
        layer = _classify(position, entries, keys, where, label=module)
        if layer.kind == LINEAR.name and layers:
            index += 1  # the gap of the ReLU assumed before this Linear
        layers.append(dataclasses.replace(layer, index=index))
        index += 1
    return layers


def layout_assumptions(state: Mapping[str, Any], where: str) -> list[str]:
    """What reading ``state`` had to assume beyond its keys and shapes, one sentence each (empty: nothing).

    A state dict records tensors only: layers without parameters are invisible. Named submodules are
    read in key order with a ReLU before every Linear but the first; the keys of one Sequential under a
    common prefix (``net.0.weight``) by index, each gap in the indices read as a ReLU; parameter-free
    layers before the first Linear of a Sequential (a leading gap) as ``nn.Flatten``, the identity on
    flat inputs. The command line prints these, so that a wrong assumption can be seen.
    """
    layers = read_layers(state, where)
    said = []
    if layers and layers[0].label != str(layers[0].index):
        names = ", ".join(layer.label for layer in layers)
        said.append(
            f"{where}: named layers read in key order ({names}), with a ReLU assumed before every Linear but the first"
        )
        return said
    if not layers:
        return said
    first_key = next(iter(layers[0].keys.values()))
    prefix = first_key[: len(first_key) - len(f"{layers[0].index}.{first_key.rpartition('.')[2]}")]
    gaps = sorted(set(range(layers[0].index, layers[-1].index)) - {layer.index for layer in layers})
    if prefix:
        said.append(f"{where}: keys under {prefix!r} read as one nn.Sequential, layer by index")
    if gaps:
        said.append(
            f"{where}: {'index' if len(gaps) == 1 else 'indices'} {', '.join(map(str, gaps))} "
            f"{'holds' if len(gaps) == 1 else 'hold'} no parameters between Linear layers: read as ReLU"
        )
    if layers[0].index > 0:
        gap = "layer 0 holds" if layers[0].index == 1 else f"layers 0-{layers[0].index - 1} hold"
        said.append(
            f"{where}: {gap} no parameters before the first Linear: read as nn.Flatten (the identity on flat inputs)"
        )
    return said


def _check_chain(previous: SavedLayer, layer: SavedLayer, where: str) -> None:
    if layer.in_features != previous.out_features:
        raise StateDictError(
            f"{where}: layer {layer.label} ({layer.kind}) takes {layer.in_features} inputs but layer "
            f"{previous.label} ({previous.kind}) before it gives {previous.out_features}"
        )


def _linear(layer: SavedLayer, state: Mapping[str, Any]) -> nn.Linear:
    weight = state[layer.keys["weight"]]
    bias = state.get(layer.keys.get("bias", ""))
    module = nn.utils.skip_init(
        nn.Linear, layer.in_features, layer.out_features, bias=bias is not None, dtype=weight.dtype
    )
    with torch.no_grad():
        module.weight.copy_(weight)
        if bias is not None:
            module.bias.copy_(bias)
    return module


def _norm(layer: SavedLayer, state: Mapping[str, Any], eps: float) -> nn.BatchNorm1d:
    norm = nn.BatchNorm1d(layer.out_features, eps=eps, dtype=state[layer.keys["weight"]].dtype)
    with torch.no_grad():
        for name in NORM.tunes + NORM.reads + NORM.stored:
            if name in layer.keys:
                getattr(norm, name).copy_(state[layer.keys[name]])
    return norm


Step = tuple[LayerKind, SavedLayer]
"""A step of the walk: a saved layer with its kind, or ``(RELU, layer)`` for the gap before ``layer``."""
Refusal = Callable[[Step | None, Step | None], StateDictError]


def _steps(layers: list[SavedLayer]) -> Iterator[Step]:
    """The saved layers in order, each gap in the indices (a layer without parameters) as a ReLU before them;
    a gap before the first layer is skipped (an ``nn.Flatten``, `layout_assumptions`)."""
    expected = layers[0].index if layers else 0
    for layer in layers:
        if layer.index != expected:
            yield RELU, layer
        yield _KINDS[layer.kind], layer
        expected = layer.index + 1


def _no_layers(where: str) -> StateDictError:
    return StateDictError(f"{where}: no layers with parameters")


def _target_refusal(where: str, previous: Step | None, step: Step | None) -> StateDictError:
    if step is None:  # a target may end after any Linear: only an empty one ends too early
        return _no_layers(where)
    kind, layer = step
    if kind is not LINEAR:
        return StateDictError(
            f"{where}: layer {layer.label} is a {layer.kind}, but a target is Linear -> ReLU -> … -> Linear "
            "without normalization (did you swap --target and --frozen?)"
        )
    return StateDictError(
        f"{where}: Linear layers {previous[1].label} and {layer.label} have nothing between them; a target "
        "needs a ReLU (a layer without parameters) between consecutive Linear layers"
    )


def _frozen_refusal(where: str, previous: Step | None, step: Step | None) -> StateDictError:
    if previous is None and step is None:
        return _no_layers(where)
    if step is None:  # a saved stack ends on a layer with parameters: here a Linear
        return StateDictError(
            f"{where}: Linear layer {previous[1].label} is not followed by a BatchNorm1d; every Linear of a "
            "frozen network is followed by the BatchNorm1d whose weight and bias are tuned (did you swap "
            "--target and --frozen?)"
        )
    kind, layer = step
    if previous is not None and previous[0] is LINEAR:
        before = previous[1]
        found = (
            f"layer {layer.label} is a {layer.kind}"
            if layer.kind != NORM.name
            else f"it is at index {layer.label}, after a layer without parameters (a ReLU before BatchNorm1d?)"
        )
        return StateDictError(
            f"{where}: Linear layer {before.label} must be followed directly by a BatchNorm1d at index "
            f"{before.index + 1}, but {found} (did you swap --target and --frozen?)"
        )
    if kind is LINEAR:
        return StateDictError(
            f"{where}: Linear layer {layer.label} follows BatchNorm1d layer {previous[1].label} directly; "
            "expected a ReLU (a layer without parameters) between them"
        )
    return StateDictError(
        f"{where}: layer {layer.label} is a {layer.kind} where a Linear is expected; a frozen network is "
        "Linear -> BatchNorm1d -> ReLU -> … -> Linear -> BatchNorm1d"
    )


def _rebuild(
    state: Mapping[str, Any], where: str, grammar: Grammar, refuse: Refusal, eps: float | Sequence[float]
) -> tuple[nn.Sequential, list[str]]:
    """Walk the saved layers by ``grammar``; rebuild each (a gap as a ReLU); return the module and BN key prefixes.

    ``eps`` is one value for every BatchNorm or one per BatchNorm, in order."""
    layers = read_layers(state, where)
    norms = sum(layer.kind == NORM.name for layer in layers)
    if isinstance(eps, Sequence):
        if len(eps) != norms:
            raise StateDictError(
                f"{where}: {len(eps)} eps values were given but the network has {norms} BatchNorm layers; "
                "give one value for all or one per BatchNorm, in order"
            )
        per_norm = [float(e) for e in eps]
    else:
        per_norm = [float(eps)] * norms
    modules: list[nn.Module] = []
    norm_prefixes: list[str] = []
    previous = None
    for kind, layer in walk(grammar, _steps(layers), refuse):
        if kind is RELU:
            modules.append(nn.ReLU())
            continue
        if previous is not None:
            _check_chain(previous, layer, where)
        previous = layer
        if kind is LINEAR:
            modules.append(_linear(layer, state))
        else:
            modules.append(_norm(layer, state, per_norm[len(norm_prefixes)]))
            norm_prefixes.append(layer.keys["weight"].removesuffix("weight"))
    return nn.Sequential(*modules).eval(), norm_prefixes


def target_module(state: Mapping[str, Any], where: str = "--target") -> nn.Sequential:
    """Rebuild a target ``Linear -> ReLU -> … -> Linear`` ``nn.Sequential`` (eval mode) from its state dict.

    Every gap in the layer indices between two Linear layers is read as a ReLU; Linear layers
    with adjacent indices, BatchNorm layers and any non-Linear entry are refused (grammar
    `verify.nn.grammar.TARGET`). The tensors are copied: ``state`` is not modified.
    """
    module, _ = _rebuild(state, where, TARGET, functools.partial(_target_refusal, where), eps=0.0)
    return module


def frozen_module(
    state: Mapping[str, Any], where: str = "--frozen", *, eps: float | Sequence[float] = 1e-5
) -> tuple[nn.Sequential, list[str]]:
    """Rebuild a frozen ``Linear -> BatchNorm1d -> ReLU -> … -> Linear -> BatchNorm1d`` stack (eval mode).

    This is what `verify.nn.frozen_mlp` builds: each Linear is followed directly (next index) by a
    BatchNorm1d with running statistics and weight/bias, and every later Linear by a gap (a ReLU;
    grammar `verify.nn.grammar.FROZEN`). A state dict does not record BatchNorm's ``eps``: ``eps``
    is one value for every BatchNorm layer or one per BatchNorm layer, in order. Returns the module
    and, per BatchNorm layer, the key prefix of its entries (``"1."``, ``"module.4."``, …). The
    tensors are copied: ``state`` is not modified.
    """
    return _rebuild(state, where, FROZEN, functools.partial(_frozen_refusal, where), eps)
