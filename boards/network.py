"""The network a board runs: the generator's, and the framing derived from its manifest."""

from __future__ import annotations

import importlib
import logging

import numpy as np

from mulfree.gen.errors import MulfreeError
from mulfree.gen.model.format import Model, dumps

from .framing import FrameFormat, StreamFormat, fingerprint

__all__ = ["network_for", "frame_format", "frames_for", "payload_width"]

log = logging.getLogger(__name__)


def network_for(model: Model, mode: str = "runtime", fold=None, *, standin: bool = False):
    """``(network, manifest, source)``: ``mulfree.gen.plan.network.build_network`` when it is
    available, else the stand-in (dense layers only); ``source`` says which."""
    if not standin:
        try:
            plan = importlib.import_module("mulfree.gen.plan.network")
        except ModuleNotFoundError as e:
            if e.name != "mulfree.gen.plan.network":
                raise
            plan = None
        if plan is not None and hasattr(plan, "build_network"):
            net, manifest = plan.build_network(model, mode=mode, fold=fold)
            return net, dict(manifest), "mulfree.gen.plan.network"
    log.warning("mulfree.gen.plan.network.build_network is not available: using the stand-in network")
    from .standin import build_standin
    net, manifest = build_standin(model, mode=mode, fold=fold)
    return net, manifest, "mulfree.boards.standin"


def frames_for(model: Model, mode: str = "runtime", fold=None, *,
               standin: bool = False) -> FrameFormat:
    """The framing a build of ``model`` speaks, without building its components (for the
    host side). Beats are assumed exactly ``values_per_beat * value_bits`` wide, which is
    what :func:`frame_format` finds on the built component."""
    options = {"mode": mode, "fold": fold}
    if not standin:
        try:
            plan = importlib.import_module("mulfree.gen.plan.network")
        except ModuleNotFoundError:
            plan = None
        if plan is not None and hasattr(plan, "plan_network"):
            _, manifest = plan.plan_network(model, mode, fold)
            return frame_format(model, None, manifest, options)
    net, manifest, _ = network_for(model, mode=mode, fold=fold, standin=standin)
    net._MustUse__silence = True     # built for its signature and manifest only
    return frame_format(model, net, manifest, options)


def payload_width(port) -> int:
    """Width of a stream port's payload, from the component's signature."""
    return port.payload.shape().width


def frame_format(model: Model, net, manifest: dict, options: dict) -> FrameFormat:
    """The framing for this network: beat widths from the component (``net``; ``None``: as
    the manifest implies), packing from the manifest, the fingerprint from the model and the
    options."""
    try:
        mi, mo = manifest["input"], manifest["output"]
        in_w = int(mi["values_per_beat"]) * int(mi["value_bits"])
        out_w = int(mo["values_per_beat"]) * int(mo["value_bits"])
        if net is not None:
            in_w, out_w = payload_width(net.i), payload_width(net.o)
        inp = StreamFormat(int(mi["beats"]), int(mi["values_per_beat"]), int(mi["value_bits"]),
                           in_w, False)
        out = StreamFormat(int(mo["beats"]), int(mo["values_per_beat"]), int(mo["value_bits"]),
                           out_w, bool(mo.get("signed", False)))
        kind = str(mo["kind"])
    except (KeyError, TypeError, ValueError) as e:
        raise MulfreeError(f"the network's manifest does not describe its streams ({e})") from None
    n_in = int(np.prod(model.input_shape))
    n_out = int(np.prod(model.output_shape))
    if inp.values < n_in:
        raise MulfreeError(f"the network takes {inp.values} input values per inference, the "
                           f"model has {n_in}")
    if out.values < n_out:
        raise MulfreeError(f"the network gives {out.values} output values per inference, the "
                           f"model has {n_out}")
    return FrameFormat(inp, out, n_in, n_out, kind, fingerprint(dumps(model), options))
