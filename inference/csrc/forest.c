/* A forest's summed class-1 leaf fractions per row: scikit-learn's Tree.predict walked for every tree and row, added
 * in tree order, as inference.loading.forest_probabilities does through scikit-learn (the fallback and the reference,
 * compared bit for bit in tests/test_native.py). One call serves all trees: scikit-learn's per-call checks cost
 * ~10 µs per tree, 2 ms per 200-tree model and batch, however few rows it has.
 *
 * The walk is scikit-learn's: a row whose feature value is NaN goes where the node's missing_go_to_left sends it,
 * else left iff (double) x <= threshold; a node whose left child is -1 is a leaf.
 *
 * The nodes are read in place from each fitted tree's own node array (no copy: a forest has ~200,000 nodes), so the
 * caller passes each tree's node and value addresses and the layout of a node record (inference.native.forest_layout
 * reads it off the arrays and refuses a layout it does not recognise). X: float32 rows, C-contiguous.
 */
#include <math.h>
#include <stdint.h>

void forest_leaf_sums(const float *X, int64_t n_rows, int64_t n_features, const int64_t *node_addresses,
                      const int64_t *value_addresses, int64_t n_trees, int64_t node_size, int64_t left_at,
                      int64_t right_at, int64_t feature_at, int64_t threshold_at, int64_t missing_left_at,
                      int64_t value_stride, int64_t value_at, double *total) {
    for (int64_t tree = 0; tree < n_trees; tree++) {
        const char *nodes = (const char *)(intptr_t)node_addresses[tree];
        const double *values = (const double *)(intptr_t)value_addresses[tree];
        for (int64_t row = 0; row < n_rows; row++) {
            const float *x = X + row * n_features;
            int64_t node = 0;
            for (;;) {
                const char *record = nodes + node * node_size;
                int64_t left = *(const int64_t *)(record + left_at);
                if (left == -1) break;
                float value = x[*(const int64_t *)(record + feature_at)];
                if (isnan(value))
                    node = *(const uint8_t *)(record + missing_left_at) ? left : *(const int64_t *)(record + right_at);
                else
                    node = (double)value <= *(const double *)(record + threshold_at)
                               ? left : *(const int64_t *)(record + right_at);
            }
            total[row] += values[node * value_stride + value_at];
        }
    }
}
