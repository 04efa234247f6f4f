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
    int64_t asked_from[n_lags > 0 ? n_lags : 1]; /* per lag: the first coin whose length is >= t + 1 + lag */
    for (int64_t k = 0; k < n_lags; k++) asked_from[k] = 0;
    for (int64_t t = 0; t < steps; t++) {
        int64_t first = first_active[t]; /* coins first.. have a row t */
        for (int64_t lane = 0; lane < n_lanes; lane++) {
            const double *arriving = padded + ((widest + t) * n_series + lane_series[lane]) * n_coins;
            const double *leaving = padded + ((widest + t - lane_window[lane]) * n_series + lane_series[lane]) * n_coins;
            double *sum = total + lane * n_coins;
            double *added = compensation_add + lane * n_coins;
            double *removed = compensation_remove + lane * n_coins;
            /* Both steps computed for every coin and kept where the value is finite: the same results as branching
             * per coin, in a loop the compiler can run several coins at a time. */
            for (int64_t coin = first; coin < n_coins; coin++) {
                double value = leaving[coin], before = sum[coin];
                int present = isfinite(value);
                double u = value + removed[coin];
                double new_sum = before - u;
                removed[coin] = present ? (new_sum - before) + u : removed[coin];
                before = present ? new_sum : before;
                value = arriving[coin];
                present = isfinite(value);
                double y = value - added[coin];
                new_sum = before + y;
                added[coin] = present ? (new_sum - before) - y : added[coin];
                sum[coin] = present ? new_sum : before;
            }
            if (every_row)
                for (int64_t coin = first; coin < n_coins; coin++)
                    every_row[(t * n_lanes + lane) * n_coins + coin] = sum[coin];
        }
        /* The coins whose asked-for row (length - 1 - lag) is t: one run of the coins sorted by length. */
        for (int64_t k = 0; k < n_lags; k++) {
            int64_t length = t + 1 + lags[k], coin = asked_from[k];
            while (coin < n_coins && sorted_lengths[coin] < length) coin++;
            asked_from[k] = coin;
            for (; coin < n_coins && sorted_lengths[coin] == length; coin++)
                for (int64_t lane = 0; lane < n_lanes; lane++)
                    totals[(k * n_lanes + lane) * n_coins + coin] = total[lane * n_coins + coin];
        }
    }
}
