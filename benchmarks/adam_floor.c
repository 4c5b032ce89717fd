/* Authors: The fastbp developers
 * SPDX-License-Identifier: BSD-3-Clause
 *
 * The optimizer's share of a friedman epoch ((10 -> 64 -> 64 -> 1), batch 64,
 * 20,000 rows: 4,929 parameters updated 312 times), and the part of it no
 * implementation can drop: Adam's step is -lr * m / (sqrt(v) + eps), one
 * correctly rounded square root and one division per parameter, as
 * scikit-learn computes it. Prints fastbp's Adam loop (_simd.h, the best
 * instruction set of this CPU) and the square root and division alone, in ms
 * per epoch, best of 20. From the repository root, with the build's flags:
 *
 *     gcc -O3 -fno-math-errno -fno-trapping-math -ffp-contract=off \
 *         -o /tmp/adam_floor benchmarks/adam_floor.c -lm && /tmp/adam_floor
 *
 * Not part of the test suite.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

typedef long Py_ssize_t;
#include "../src/fastbp/_simd.h"

#define N_PARAMS 4929
#define BATCHES 312

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

#if FASTBP_X86_DISPATCH
__attribute__((target("avx512f,avx512dq,avx512vl,avx512bw")))
#endif
static void __attribute__((noinline))
sqrt_div(double *restrict out, const double *restrict m, const double *restrict v,
         Py_ssize_t n)
{
    Py_ssize_t k;
    for (k = 0; k < n; k++)
        out[k] = m[k] / (sqrt(v[k]) + 1e-8);
}

int main(void)
{
    /* The friedman net's arrays in the order fastbp updates them. */
    static const int sizes[6] = {640, 4096, 64, 64, 64, 1};
    double *p = malloc(8 * N_PARAMS), *g = malloc(8 * N_PARAMS);
    double *m = calloc(N_PARAMS, 8), *v = calloc(N_PARAMS, 8), *o = malloc(8 * N_PARAMS);
    fastbp_step s = {64, 1e-3, 1e-4, 0.9, 0, 0.9, 0.999, 1e-8, 0};
    double best_adam = 1e9, best_floor = 1e9;
    int i, r, b, a, off;
    for (i = 0; i < N_PARAMS; i++) {
        p[i] = 0.01 * (i % 13);
        g[i] = 0.001 * (i % 7 - 3);
        v[i] = 1e-6 * (i % 11 + 1);
    }
    fastbp_isa_set(fastbp_isa_best());
    printf("instruction set: %s\n", fastbp_isa_names[fastbp_isa_current]);
    for (r = 0; r < 20; r++) {
        double t = now(), dt;
        for (b = 0; b < BATCHES; b++)
            for (a = 0, off = 0; a < 6; off += sizes[a], a++) {
                s.alpha = a < 3 ? 1e-4 : 0.0;
                fastbp_k.adam_d(p + off, g + off, m + off, v + off, sizes[a], &s);
            }
        dt = now() - t;
        if (dt < best_adam)
            best_adam = dt;
        t = now();
        for (b = 0; b < BATCHES; b++)
            sqrt_div(o, m, v, N_PARAMS);
        dt = now() - t;
        if (dt < best_floor)
            best_floor = dt;
    }
    printf("Adam, %d float64 parameters x %d batches: %.3f ms per epoch (%.2f ns each)\n",
           N_PARAMS, BATCHES, 1e3 * best_adam, 1e9 * best_adam / BATCHES / N_PARAMS);
    printf("its square root and division alone:      %.3f ms per epoch (%.2f ns each)\n",
           1e3 * best_floor, 1e9 * best_floor / BATCHES / N_PARAMS);
    free(p);
    free(g);
    free(m);
    free(v);
    free(o);
    return 0;
}
