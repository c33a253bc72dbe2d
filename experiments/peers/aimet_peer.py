"""AIMET (aimet-torch 2.42, Qualcomm) as a peer: its AdaRound and its cross-layer equalization
on the same EfficientNet-Lite0, weight-only, through AIMET's own QuantizationSimModel.

Used by peers.py (methods aimet_rtn, aimet_adaround, aimet_cle_rtn); needs PyTorch 2.x, so it runs
in .venv/peers2 (experiments/peers/run.sh with PEERS_TORCH=2).

What is matched and what is not (AIMET's settings, read from its 2.42 sources):
- Weights: AIMET's symmetric grid is the full signed range, codes -2^(b-1)..2^(b-1)-1 (its
  "strict_symmetric" is False by default; mpq and the Brevitas rows use -(2^(b-1)-1)..2^(b-1)-1).
  Scales: QuantScheme.post_training_tf = max |w| (the RTN rows), as mpq's RTN.
- Granularity: its per-channel config (default_config_per_channel.json) quantizes Conv and Gemm
  per output channel; the per-layer config is its default_config.json.
- Activations, inputs and outputs: every activation quantizer is removed (weight-only), and the
  bias is not quantized (AIMET's default).
- BatchNorm is folded first (fold_all_batch_norms), as mpq and Brevitas do.
- AdaRound: AIMET's defaults except the iteration count, set to --iters as for mpq and Brevitas;
  num_batches covers all calibration images, batch 32; reg 0.01, beta (20, 2), warm start 0.2
  (the same as mpq's defaults).
"""
import copy
import json
import os
import tempfile

import torch


def _config(granularity):
    import aimet_torch
    root = os.path.join(os.path.dirname(aimet_torch.__file__), "common", "quantsim_config")
    name = "default_config_per_channel.json" if granularity == "per_channel" else "default_config.json"
    return os.path.join(root, name)


def _weight_only_sim(model, dummy, bits, cfg, scheme):
    """AIMET's QuantizationSimModel of `model` with every input and output quantizer removed:
    weight-only, as mpq's and Brevitas's rows."""
    from aimet_torch.nn import BaseQuantizationMixin
    from aimet_torch.quantsim import QuantizationSimModel
    import torch.nn as nn
    sim = QuantizationSimModel(model, dummy_input=dummy, quant_scheme=scheme,
                               default_param_bw=bits, config_file=cfg)
    for m in sim.model.modules():
        if isinstance(m, BaseQuantizationMixin):
            m.input_quantizers = nn.ModuleList([None for _ in m.input_quantizers])
            m.output_quantizers = nn.ModuleList([None for _ in m.output_quantizers])
    return sim


def count_quant_layers(sim_model):
    from aimet_torch.nn import BaseQuantizationMixin
    n = 0
    for m in sim_model.modules():
        if isinstance(m, BaseQuantizationMixin) and "weight" in m.param_quantizers \
                and m.param_quantizers["weight"] is not None:
            n += 1
    return n


def aimet_model(model, method, bits, granularity, calib, iters):
    """model: the FP nn.Module with plain nn.Conv2d (peers.standardize); returns the weight-only
    QuantizationSimModel's model and a note."""
    from aimet_torch.batch_norm_fold import fold_all_batch_norms
    from aimet_torch.common.defs import QuantScheme
    m = copy.deepcopy(model).eval()
    dummy = calib[:1]
    if method == "aimet_cle_rtn":
        from aimet_torch.cross_layer_equalization import equalize_model
        equalize_model(m, tuple(dummy.shape))  # folds BN, equalizes pairs, absorbs high biases
    else:
        fold_all_batch_norms(m, tuple(dummy.shape))
    cfg = _config(granularity)
    scheme = QuantScheme.post_training_tf
    note = ""
    if method == "aimet_adaround":
        from aimet_torch.adaround.adaround_weight import Adaround, AdaroundParameters
        loader = torch.utils.data.DataLoader(calib, batch_size=32)
        params = AdaroundParameters(data_loader=loader, num_batches=len(loader),
                                    default_num_iterations=iters)
        with tempfile.TemporaryDirectory() as tmp:
            m = Adaround.apply_adaround(m, dummy, params, path=tmp, filename_prefix="lite0",
                                        default_param_bw=bits, default_quant_scheme=scheme,
                                        default_config_file=cfg)
            sim = _weight_only_sim(m, dummy, bits, cfg, scheme)
            enc = os.path.join(tmp, "lite0.encodings")
            sim.set_and_freeze_param_encodings(enc)
            with open(enc) as f:
                note = f"{len(json.load(f).get('param_encodings', {}))} AdaRound param encodings; "
    else:
        sim = _weight_only_sim(m, dummy, bits, cfg, scheme)
        with torch.no_grad():
            sim.compute_encodings(lambda mm: mm(calib[:8]))
    sim.model.eval()
    return sim.model, note + f"{count_quant_layers(sim.model)} layers quantized"
