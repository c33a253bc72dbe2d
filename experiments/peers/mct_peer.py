"""Sony's Model Compression Toolkit (model-compression-toolkit 2.6.1) as a peer: its PTQ on the
same EfficientNet-Lite0, weight-only, through a target-platform description (TPC) of ours.

Used by peers.py (methods mct_mse: MCT's PTQ with its defaults but bias correction off;
mct_mse_bc: MCT's defaults, weight bias correction on); needs PyTorch 2.x, so it runs in
.venv/peers2 (experiments/peers/run.sh with PEERS_TORCH=2).

MCT has no "weight-only W4" switch: what it quantizes and how comes from a TPC. The one built
here (`weight_only_tpc`), read against MCT 2.6.1's schema (v2) and its qnnpack TPC:
- Conv, depthwise conv and fully connected kernels at `bits`, QuantizationMethod.SYMMETRIC (a
  float threshold per channel or per tensor), first and last layers included. MCT's symmetric
  grid is the full signed range, codes -2^(b-1)..2^(b-1)-1 (as AIMET's; mpq's and Brevitas's
  rows use -(2^(b-1)-1)..2^(b-1)-1).
- Thresholds: MCT's weights_error_method default, MSE (a search per channel/tensor, as mpq's
  MSE method).
- Biases and every activation are not quantized (enable_activation_quantization=False).
- BatchNorm is folded by MCT's graph substitutions, as mpq and the other peers do. Linear and
  residual collapsing are turned off, so that the same 50 layers are quantized as mpq's.
"""


def weight_only_tpc(bits, per_channel):
    import model_compression_toolkit.target_platform_capabilities.schema.mct_current_schema as s
    from mct_quantizers import QuantizationMethod
    from model_compression_toolkit.constants import FLOAT_BITWIDTH
    from model_compression_toolkit.target_platform_capabilities.constants import BIAS_ATTR, KERNEL_ATTR

    def attr(n_bits, enabled, pc=False):
        return s.AttributeQuantizationConfig(
            weights_quantization_method=QuantizationMethod.SYMMETRIC, weights_n_bits=n_bits,
            weights_per_channel_threshold=pc, enable_weights_quantization=enabled,
            lut_values_bitwidth=None)

    def op(mapping):
        return s.OpQuantizationConfig(
            default_weight_attr_config=attr(FLOAT_BITWIDTH, False), attr_weights_configs_mapping=mapping,
            activation_quantization_method=QuantizationMethod.SYMMETRIC, activation_n_bits=8,
            supported_input_activation_n_bits=8, enable_activation_quantization=False,
            quantization_preserving=False, fixed_scale=None, fixed_zero_point=None, simd_size=None,
            signedness=s.Signedness.AUTO)

    linear = op({KERNEL_ATTR: attr(bits, True, per_channel), BIAS_ATTR: attr(FLOAT_BITWIDTH, False)})
    options = s.QuantizationConfigOptions(quantization_configurations=(linear,))
    names = (s.OperatorSetNames.CONV, s.OperatorSetNames.DEPTHWISE_CONV, s.OperatorSetNames.FULLY_CONNECTED)
    ops = tuple(s.OperatorsSet(name=n, qc_options=options) for n in names)
    return s.TargetPlatformCapabilities(
        default_qco=s.QuantizationConfigOptions(quantization_configurations=(op({}),)),
        tpc_minor_version=1, tpc_patch_version=0, tpc_platform_type="mpq_peer_weight_only",
        operator_set=ops, fusing_patterns=(), add_metadata=False, name="mpq_peer_weight_only")


def count_quant_layers(model):
    from mct_quantizers import PytorchQuantizationWrapper
    return sum(isinstance(m, PytorchQuantizationWrapper) and len(m.weights_quantizers) > 0
               for m in model.modules())


def mct_model(model, method, bits, granularity, calib):
    """(quantized nn.Module, note) for method mct_mse or mct_mse_bc; `model` is the caller's
    copy (MCT builds its own graph from it)."""
    import model_compression_toolkit as mct
    qc = mct.core.QuantizationConfig(weights_bias_correction=method == "mct_mse_bc",
                                     linear_collapsing=False, residual_collapsing=False)
    batches = [calib[i:i + 32] for i in range(0, len(calib), 32)]

    def representative():
        for b in batches:
            yield [b]

    q, _ = mct.ptq.pytorch_post_training_quantization(
        model.eval(), representative,
        target_platform_capabilities=weight_only_tpc(bits, granularity == "per_channel"),
        core_config=mct.core.CoreConfig(quantization_config=qc))
    q = q.cpu().eval()
    return q, f"{count_quant_layers(q)} layers quantized; full signed grid (2^b levels)"
