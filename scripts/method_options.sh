# Sourced by bench/bench_pretrained.sh and experiments/peers/run.sh: the `mpq quantize` options
# of a method label, the labels of configs/sweeps/real_lite0.json. Sets the array `opt`; returns
# 1 for an unknown label.
mpq_method_options() {
  case $1 in
    RTN) opt=(--method rtn) ;;
    MSE) opt=(--method mse) ;;
    RTN+BC) opt=(--method rtn --set bias_correction=true) ;;
    CLE+RTN) opt=(--method rtn --set model.equalize.enabled=true) ;;
    GPTQ) opt=(--method gptq) ;;
    GPTQ-act-order) opt=(--method gptq --set weights.gptq.act_order=true) ;;
    GPTQ-prefix) opt=(--method gptq --set calibration.statistics=quantized_prefix) ;;
    AdaRound) opt=(--method adaround) ;;
    AdaRound-max) opt=(--method adaround --set weights.adaround.grid=max) ;;
    AdaRound-data) opt=(--method adaround --set weights.adaround.grid=max
                        --set weights.adaround.objective=data --set weights.adaround.batch_size=1) ;;
    "MP 10%" | MP10%) opt=(--method multipoint --set weights.multipoint.budget=0.1) ;;
    "GPTQ+MP 10%" | MP10%+GPTQ) opt=(--method multipoint --set weights.multipoint.budget=0.1
                                     --set weights.multipoint.first_point=gptq) ;;
    "AdaRound+MP 10%") opt=(--method multipoint --set weights.multipoint.budget=0.1
                            --set weights.multipoint.first_point=adaround) ;;
    "RTN W4A8") opt=(--method rtn --set activations.bits=8) ;;
    *) return 1 ;;
  esac
}
