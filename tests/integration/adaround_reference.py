#!/usr/bin/env python3
"""An independent AdaRound in PyTorch (Nagel et al., ICML 2020), objective from Σ, with the same
initialization and schedule as mpq (src/mpq/quant/adaround.h): h(V) = clamp(sigmoid(V)(ζ-γ)+γ,
0, 1), ζ = 1.1, γ = -0.1, V0 such that h(V0) = frac(W/s); loss Σ_c δ_cᵀ Σ δ_c + λ Σ (1 - |2h-1|^β)
with the regularizer off for the first `warmup` fraction and β decaying linearly from beta_start
to beta_end; torch.optim.Adam (lr, default betas and eps); hard rounding h >= 1/2 at the end.
Autograd computes the gradients mpq writes by hand.

  adaround_reference.py TOOL WORKDIR          the statistics objective
  adaround_reference.py --data TOOL WORKDIR   the data objective (asymmetric reconstruction)

Checks on a small layer (linear [16 x 48], correlated inputs, 4 bits, MSE grid per channel,
1500 iterations) run through tests' mpq_layer_tool:
  - every final code is clip(floor(W/s) + h, -L, L) with h in {0, 1} (rows the guard returned
    to round-to-nearest excepted);
  - the final soft objective (reconstruction term) of mpq and of this reference agree within 5%
    relative: both run Adam in float32 on the same problem; the GEMM's summation order differs
    (OpenBLAS vs PyTorch's kernels), and Adam's normalized steps amplify last-bit differences of
    gradients near zero, so trajectories drift apart slowly; measured here ~1e-3;
  - the hard-rounded objectives agree within 5% relative and the rounding decisions for >= 95%
    of weights (a weight whose h ends near 1/2 can go either way);
  - mpq's rounded result is not worse than round-to-nearest on the same grid (per row: the guard
    keeps RTN otherwise) and at least one row improved on it.

With --data, the same on the data objective (mpq's adaround_layer_data): a conv [12 x 8 x 3 x 3]
with ReLU after it, 32 inputs of 8 x 8, the quantized inputs x~ = x + noise; the loss is
mean over output rows of Σ_c (relu(W~ x~ + b) - relu(W x + b))², computed here with
torch.nn.functional.conv2d and autograd; the whole set is one batch (batch_size = N, so no
minibatch draws to reproduce). Same bounds, for the same reasons (float32 Adam on kernels that sum
in another order); its hard objective is recomputed here from mpq's codes.
"""
import os
import subprocess
import sys

import h5py
import numpy as np
import torch

ZETA, GAMMA = 1.1, -0.1


def optimize(V, h_of, rec, iters, lam, b0, b1, warmup, lr):
    """Adam on V for rec(h(V)) plus the regularizer after the warm-up, β decaying linearly."""
    opt = torch.optim.Adam([V], lr=lr)
    warm = int(warmup * iters)
    for t in range(iters):
        opt.zero_grad()
        h = h_of(V)
        loss = rec(h)
        if t >= warm:
            rel = (t - warm) / (iters - warm)
            beta = b1 + (b0 - b1) * max(0.0, 1.0 - rel)
            loss = loss + lam * (1 - (2 * h - 1).abs().pow(beta)).sum()
        loss.backward()
        opt.step()


def reference(W, sigma, steps, L, iters, lam, b0, b1, warmup, lr):
    W = torch.tensor(W, dtype=torch.float32)
    S = torch.tensor(sigma, dtype=torch.float32)
    s = torch.tensor(steps, dtype=torch.float32)[:, None]
    x = W / s
    fl = torch.floor(x)
    rest = (x - fl).clamp(0, 1)
    V = (-torch.log((ZETA - GAMMA) / (rest - GAMMA) - 1)).clone().requires_grad_(True)

    def h_of(v):
        return torch.clamp(torch.sigmoid(v) * (ZETA - GAMMA) + GAMMA, 0, 1)

    def rec(h):
        d = s * torch.clamp(fl + h, -L, L) - W
        return ((d @ S) * d).sum()

    optimize(V, h_of, rec, iters, lam, b0, b1, warmup, lr)
    with torch.no_grad():
        soft = rec(h_of(V)).item()
        hard = (V >= 0).float()
        codes = torch.clamp(fl + hard, -L, L)
        return soft, rec(hard).item(), codes.numpy().astype(np.int64), fl.numpy()


def reference_data(W, b, xf, xq, steps, L, iters, lam, b0, b1, warmup, lr, pad):
    W, b, xf, xq = (torch.tensor(a, dtype=torch.float32) for a in (W, b, xf, xq))
    s = torch.tensor(steps, dtype=torch.float32)[:, None, None, None]
    x = W / s
    fl = torch.floor(x)
    rest = (x - fl).clamp(0, 1)
    V = (-torch.log((ZETA - GAMMA) / (rest - GAMMA) - 1)).clone().requires_grad_(True)
    conv = lambda inp, w: torch.relu(torch.nn.functional.conv2d(inp, w, b, padding=pad))
    target = conv(xf, W).detach()
    rows = target.numel() / target.shape[1]

    def h_of(v):
        return torch.clamp(torch.sigmoid(v) * (ZETA - GAMMA) + GAMMA, 0, 1)

    def rec(h):
        return ((conv(xq, s * torch.clamp(fl + h, -L, L)) - target) ** 2).sum() / rows

    optimize(V, h_of, rec, iters, lam, b0, b1, warmup, lr)
    with torch.no_grad():
        soft = rec(h_of(V)).item()
        hard = (V >= 0).float()
        codes = torch.clamp(fl + hard, -L, L)
        return soft, rec(hard).item(), codes.reshape(W.shape[0], -1).numpy().astype(np.int64), \
            fl.reshape(W.shape[0], -1).numpy()


def main_data(tool, workdir):
    os.makedirs(workdir, exist_ok=True)
    torch.manual_seed(0)
    rng = np.random.default_rng(11)
    C, Cin, N, bits, pad = 12, 8, 32, 4, 1
    L = 2 ** (bits - 1) - 1
    xf = np.maximum(rng.standard_normal((N, Cin, 8, 8)), 0).astype(np.float32)
    xq = (xf + 0.05 * rng.standard_normal(xf.shape)).astype(np.float32)
    W = (rng.standard_normal((C, Cin, 3, 3)) * 0.2).astype(np.float32)
    b = (rng.standard_normal(C) * 0.1).astype(np.float32)
    d = Cin * 9
    sigma = np.eye(d, dtype=np.float32)[None]  # comparison errors only
    opts = dict(iterations=1500, **{"lambda": 0.01}, beta_start=20.0, beta_end=2.0, warmup=0.2,
                lr=1e-3)
    inp, out = os.path.join(workdir, "adad.in.h5"), os.path.join(workdir, "adad.out.h5")
    with h5py.File(inp, "w") as f:
        f["w"], f["bias"], f["x_fp"], f["x_q"], f["sigma"] = W, b, xf, xq, sigma
        f.attrs.update(bits=bits, granularity="per_channel", grid="mse", padding=pad, groups=1,
                       activation="relu", batch_size=N, seed=0, **opts)
    subprocess.run([tool, "adaround_data", inp, out], check=True)
    with h5py.File(out) as f:
        codes = f["codes"][()].astype(np.int64)
        steps = f["scales"][()].astype(np.float64)
        soft_mpq = float(f.attrs["objective_soft"])
        data_err, data_rtn = float(f.attrs["data_error"]), float(f.attrs["data_rtn_error"])
        kept = int(f.attrs["rows_kept_rtn"])
    soft_ref, hard_ref, codes_ref, fl = reference_data(
        W, b, xf, xq, steps.astype(np.float32), L, opts["iterations"], opts["lambda"],
        opts["beta_start"], opts["beta_end"], opts["warmup"], opts["lr"], pad)
    with torch.no_grad():  # mpq's hard objective, recomputed here in float64
        Wq = torch.tensor(steps[:, None] * codes).reshape(W.shape)
        f64 = lambda a: torch.tensor(a, dtype=torch.float64)
        y = torch.relu(torch.nn.functional.conv2d(f64(xq), Wq, f64(b), padding=pad))
        t = torch.relu(torch.nn.functional.conv2d(f64(xf), f64(W), f64(b), padding=pad))
        hard_mpq = float(((y - t) ** 2).sum() / (t.numel() / C))
    failures = []
    valid = (codes == np.clip(fl, -L, L)) | (codes == np.clip(fl + 1, -L, L))
    if not np.all(valid) or np.abs(codes).max() > L:
        failures.append("codes are not clip(floor(W/s) + {0, 1}, -L, L)")
    rel_soft = abs(soft_mpq - soft_ref) / soft_ref
    rel_hard = abs(hard_mpq - hard_ref) / hard_ref
    rel_own = abs(hard_mpq - data_err) / data_err
    same = float((codes == codes_ref).mean())
    print(f"data objective: soft mpq {soft_mpq:.6e} ref {soft_ref:.6e} ({rel_soft:.1e}); hard mpq "
          f"{hard_mpq:.6e} ref {hard_ref:.6e} ({rel_hard:.1e}); same decisions {100 * same:.2f}%; "
          f"RTN {data_rtn:.6e}; rows kept RTN {kept}")
    if rel_soft > 0.05:
        failures.append(f"soft objectives differ by {rel_soft:.3f} relative (bound 0.05)")
    if rel_hard > 0.05:
        failures.append(f"hard objectives differ by {rel_hard:.3f} relative (bound 0.05)")
    # mpq's reported error of its own codes against float64 here: float32 convs of 72 terms
    # per output, summed in float64 (bound 1e-4, as tolerances.h's kFloat32Cancel)
    if rel_own > 1e-4:
        failures.append(f"mpq's data_error differs from its codes' objective by {rel_own:.1e}")
    if same < 0.95:
        failures.append(f"only {100 * same:.1f}% of rounding decisions agree (bound 95%)")
    if not data_err < data_rtn:
        failures.append("not below round-to-nearest's data objective")
    for x in failures:
        print("FAIL:", x)
    sys.exit(1 if failures else 0)


def main(tool, workdir):
    os.makedirs(workdir, exist_ok=True)
    torch.manual_seed(0)
    rng = np.random.default_rng(7)
    C, d, bits = 16, 48, 4
    L = 2 ** (bits - 1) - 1
    X = rng.standard_normal((400, d)) @ rng.standard_normal((d, d)) * 0.3
    sigma = (X.T @ X / X.shape[0]).astype(np.float32)
    W = (rng.standard_normal((C, d)) * 0.2).astype(np.float32)
    opts = dict(iterations=1500, **{"lambda": 0.01}, beta_start=20.0, beta_end=2.0, warmup=0.2,
                lr=1e-3)
    inp, out = os.path.join(workdir, "ada.in.h5"), os.path.join(workdir, "ada.out.h5")
    with h5py.File(inp, "w") as f:
        f["w"] = W
        f["sigma"] = sigma[None]
        f.attrs.update(bits=bits, granularity="per_channel", grid="mse", **opts)
    subprocess.run([tool, "adaround", inp, out], check=True)
    with h5py.File(out) as f:
        codes = f["codes"][()].astype(np.int64)
        steps = f["scales"][()].astype(np.float64)
        err = f["output_error"][()]
        rtn_err = f["rtn_output_error"][()]
        soft_mpq = float(f.attrs["objective_soft"])
        kept = int(f.attrs["rows_kept_rtn"])
    soft_ref, hard_ref, codes_ref, fl = reference(W, sigma, steps.astype(np.float32), L,
                                                  opts["iterations"], opts["lambda"],
                                                  opts["beta_start"], opts["beta_end"],
                                                  opts["warmup"], opts["lr"])
    D = W.astype(np.float64) - steps[:, None] * codes
    hard_mpq = float(np.einsum("ij,jk,ik->", D, sigma.astype(np.float64), D))
    failures = []
    # Rows the guard sent back to RTN may round either way; the others must be floor or floor+1
    # (clipped to [-L, L]: the MSE grid clips the largest weights).
    guarded = err >= rtn_err * (1 - 1e-12)
    ok_rows = ~guarded
    valid = (codes == np.clip(fl, -L, L)) | (codes == np.clip(fl + 1, -L, L))
    if not np.all(valid[~guarded]) or np.abs(codes).max() > L:
        failures.append("codes are not clip(floor(W/s) + {0, 1}, -L, L)")
    rel_soft = abs(soft_mpq - soft_ref) / soft_ref
    rel_hard = abs(hard_mpq - hard_ref) / hard_ref
    same = float((codes == codes_ref).mean())
    print(f"soft objective mpq {soft_mpq:.6e} ref {soft_ref:.6e} ({rel_soft:.1e}); hard mpq "
          f"{hard_mpq:.6e} ref {hard_ref:.6e} ({rel_hard:.1e}); same decisions {100 * same:.2f}%; "
          f"RTN {rtn_err.sum():.6e}; rows kept RTN {kept}; {int(ok_rows.sum())} rows checked")
    if rel_soft > 0.05:
        failures.append(f"soft objectives differ by {rel_soft:.3f} relative (bound 0.05)")
    if rel_hard > 0.05:
        failures.append(f"hard objectives differ by {rel_hard:.3f} relative (bound 0.05)")
    if same < 0.95:
        failures.append(f"only {100 * same:.1f}% of rounding decisions agree (bound 95%)")
    if np.any(err > rtn_err * (1 + 1e-9)) or not np.any(err < rtn_err * (1 - 1e-6)):
        failures.append("not below round-to-nearest's output error")
    for x in failures:
        print("FAIL:", x)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--data":
        main_data(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 3:
        main(sys.argv[1], sys.argv[2])
    else:
        sys.exit(__doc__)
