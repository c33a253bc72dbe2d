"""Would torch.jit.optimize_for_inference (MKLDNN tensors, prepacked weights) speed up mpq's
evaluation of the Fashion-MNIST default models? Measures, on one thread at batch 500:
  1. the frozen model vs optimize_for_inference of it;
  2. the same with an identity operator before every conv/linear, as mpq's mpq::layer_input hook
     sits there (the graph cannot keep MKLDNN tensors across it).
Prints images/s and the largest output difference.
Usage: /usr/bin/python3 bench/optimize_for_inference.py results/models/<arch>-<key>.pt
"""
import sys
import time

import torch

torch.set_num_threads(1)
lib = torch.library.Library("mpqbench", "DEF")
lib.define("ident(Tensor x, int i) -> Tensor")
lib.impl("ident", lambda x, i: x, "CPU")


def with_hooks(frozen):
    g = frozen.graph
    layers = [n for n in g.nodes() if n.kind() in ("aten::conv2d", "aten::_convolution", "aten::linear")]
    for i, n in enumerate(layers):
        c = g.insertConstant(i)
        c.node().moveBefore(n)
        h = g.create("mpqbench::ident", [n.inputsAt(0), c])
        h.insertBefore(n)
        h.output().setType(n.inputsAt(0).type())
        n.replaceInputWith(n.inputsAt(0), h.output())
    torch._C._jit_pass_lint(g)
    return frozen


def rate(f, x, seconds=2.0):
    with torch.no_grad():
        f(x)
        t = time.perf_counter()
        n = 0
        while time.perf_counter() - t < seconds:
            f(x)
            n += 1
        return x.shape[0] * n / (time.perf_counter() - t)


def main():
    path = sys.argv[1]
    x = torch.randn(500, 1, 28, 28)
    for label, hooked in (("no hooks", False), ("a hook before every layer", True)):
        # optimize_for_inference rewrites an already frozen module in place: two copies.
        frozen, optimized = (torch.jit.freeze(torch.jit.load(path).eval()) for _ in range(2))
        if hooked:
            frozen, optimized = with_hooks(frozen), with_hooks(optimized)
        optimized = torch.jit.optimize_for_inference(optimized)
        with torch.no_grad():
            diff = (frozen(x) - optimized(x)).abs().max().item()
        for _ in range(2):  # alternate, this machine is noisy
            a, b = rate(frozen, x), rate(optimized, x)
            print(f"{label}: frozen {a:.0f} img/s, optimize_for_inference {b:.0f} img/s, "
                  f"ratio {b / a:.2f}, max |diff| {diff:g}", flush=True)


if __name__ == "__main__":
    main()
