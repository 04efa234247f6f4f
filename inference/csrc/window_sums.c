/* pandas' compensated (Kahan) running window sums, stepped through time for many coins and lanes at once: the one
 * loop of the feature engine that numpy cannot vectorize over time (each step depends on the one before), compiled.
 *
 * The same arithmetic, in the same order, as inference.features.rolling._numpy_window_sums, which documents the
 * algorithm and stays the fallback where this library is not built. Bit-identical results need IEEE double
 * arithmetic without contraction into fused multiply-adds and without -ffast-math: the Makefile compiles with
 * -O2 -ffp-contract=off (inference/native.py), and tests/test_native.py compares both implementations bit for bit.
 *
 * Arrays are C-contiguous doubles: padded (widest + rows, n_series, n_coins), coins sorted by length; state
 * (3, n_lanes, n_coins) zeros (running sum, compensation of additions, of removals); totals (n_lags, n_lanes,
 * n_coins) receives lane sums at row length - 1 - lag; every_row (rows, n_lanes, n_coins) or NULL receives the sum
 * after every row a coin has.
 */
#include <math.h>
#include <stdint.h>

void window_sums(const double *padded, int64_t widest, int64_t n_series, int64_t n_coins,
                 const int64_t *sorted_lengths, const int64_t *first_active, int64_t steps,
                 const int64_t *lane_series, const int64_t *lane_window, int64_t n_lanes,
                 const int64_t *lags, int64_t n_lags, double *state, double *totals, double *every_row) {
    double *total = state, *compensation_add = state + n_lanes * n_coins,
           *compensation_remove = state + 2 * n_lanes * n_coins;
    for (int64_t t = 0; t < steps; t++) {
        int64_t first = first_active[t]; /* coins first.. have a row t */
        for (int64_t lane = 0; lane < n_lanes; lane++) {
            const double *arriving = padded + ((widest + t) * n_series + lane_series[lane]) * n_coins;
            const double *leaving = padded + ((widest + t - lane_window[lane]) * n_series + lane_series[lane]) * n_coins;
            double *sum = total + lane * n_coins;
            double *added = compensation_add + lane * n_coins;
            double *removed = compensation_remove + lane * n_coins;
            for (int64_t coin = first; coin < n_coins; coin++) {
                double value = leaving[coin];
                if (isfinite(value)) {
                    double u = value + removed[coin];
                    double new_sum = sum[coin] - u;
                    removed[coin] = (new_sum - sum[coin]) + u;
                    sum[coin] = new_sum;
                }
                value = arriving[coin];
                if (isfinite(value)) {
                    double y = value - added[coin];
                    double new_sum = sum[coin] + y;
                    added[coin] = (new_sum - sum[coin]) - y;
                    sum[coin] = new_sum;
                }
                if (every_row) every_row[(t * n_lanes + lane) * n_coins + coin] = sum[coin];
                for (int64_t k = 0; k < n_lags; k++)
                    if (sorted_lengths[coin] == t + 1 + lags[k])
                        totals[(k * n_lanes + lane) * n_coins + coin] = sum[coin];
            }
        }
    }
}
