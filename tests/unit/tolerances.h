// Named tolerances of the unit tests, each with the reason it is what it is (DEVELOPERS.md: "state
// every tolerance and why"). Relative unless the name says absolute. Values are bounds on
// rounding, not on algorithmic error: a test that needs more slack than these is testing an
// approximation and states its own bound where it is used.
#pragma once

namespace mpq::test::tol {

/// A few float64 operations on exact inputs (means, square roots of small sums): a few ulps.
constexpr double kFloat64Few = 1e-15;
/// float64 results of the same formula summed in another order (up to ~1e4 terms, 2^-52 each).
constexpr double kFloat64 = 1e-12;
/// float64 results of iterative or greedy procedures against an independent reference that takes
/// other (equally valid) intermediate roundings, e.g. breakpoint sweeps vs brute force.
constexpr double kFloat64Iterative = 1e-9;
/// One float32 rounding of a float64 value (2^-24 ≈ 6e-8 relative), or float64 math on such.
constexpr double kFloat32Ulp = 1e-7;
/// float32 values against float64 references: 2^-24 per operation over sums of up to ~1e3 terms.
constexpr double kFloat32 = 1e-6;
/// float32 network outputs through other kernels or folded weights (oneDNN picks per ISA; BN
/// folding reassociates), relative to the output scale.
constexpr double kFloat32Network = 1e-5;
/// float32 quantities with cancellation (output errors from Σ = XᵀX, e = wᵀΣw − 2…, GEMMs of
/// thousands of terms) against direct computation.
constexpr double kFloat32Cancel = 1e-4;

}  // namespace mpq::test::tol
