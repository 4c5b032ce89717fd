/* Authors: The fastbp developers
 * SPDX-License-Identifier: BSD-3-Clause
 *
 * fastbp's own small matrix products (src/fastbp/_simd.h) alone, at the
 * shapes of the benchmark nets, in GFLOP/s: the best of 5 rounds of many
 * calls, at the best instruction set of this CPU (or FASTBP_ISA=default,
 * avx2, avx512). From the repository root, with the build's flags:
 *
 *     gcc -O3 -fno-math-errno -fno-trapping-math -ffp-contract=off \
 *         -o /tmp/small_gemm benchmarks/small_gemm.c -lm && /tmp/small_gemm
 *
 * Shapes are (m, n, k) of c[m, n] = op(a)[m, k] @ b[k, n]; ta=1 reads a
 * transposed, as the weight gradients do. Not part of the test suite.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef long Py_ssize_t;
#include "../src/fastbp/_simd.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

int main(void)
{
    static const struct { int m, n, k, ta; const char *what; } shapes[] = {
        {32, 100, 10, 0, "tiny forward, hidden layer"},
        {10, 100, 32, 1, "tiny gradient, hidden layer"},
        {32, 1, 100, 0, "tiny forward, output unit"},
        {100, 1, 32, 1, "tiny gradient, output unit"},
        {64, 64, 10, 0, "friedman forward, first layer"},
        {10, 64, 64, 1, "friedman gradient, first layer"},
        {64, 64, 64, 0, "friedman forward, 64x64"},
        {64, 64, 64, 1, "friedman gradient, 64x64"},
        {64, 1, 64, 0, "friedman forward, output unit"},
        {64, 1, 64, 1, "friedman gradient, output unit"},
    };
    const char *pin = getenv("FASTBP_ISA");
    int isa = fastbp_isa_best(), q, i;
    double *a = malloc(8 * 100000), *b = malloc(8 * 100000), *c = malloc(8 * 100000);
    if (pin != NULL)
        for (i = 0; i < FASTBP_N_ISA; i++)
            if (strcmp(pin, fastbp_isa_names[i]) == 0 && fastbp_isa_supported(i))
                isa = i;
    fastbp_isa_set(isa);
    printf("instruction set: %s (double)\n", fastbp_isa_names[isa]);
    for (i = 0; i < 100000; i++) {
        a[i] = (i % 7) * 0.1;
        b[i] = (i % 5) * 0.2;
    }
    for (q = 0; q < (int) (sizeof(shapes) / sizeof(shapes[0])); q++) {
        const int m = shapes[q].m, n = shapes[q].n, k = shapes[q].k, ta = shapes[q].ta;
        const Py_ssize_t lda = ta ? m : k;
        const int reps = 2000000 / (m * n * k) + 1000;
        double best = 1e9;
        int r, it;
        for (r = 0; r < 5; r++) {
            double t = now(), dt;
            for (it = 0; it < reps; it++)
                fastbp_k.gemm_d(m, n, k, a, ta ? 1 : lda, ta ? lda : 1, b, n, c, n);
            dt = (now() - t) / reps;
            if (dt < best)
                best = dt;
        }
        printf("m=%3d n=%3d k=%3d ta=%d  %7.3f us  %5.1f GFLOP/s  %s\n", m, n, k, ta,
               best * 1e6, 2.0 * m * n * k / best / 1e9, shapes[q].what);
    }
    free(a);
    free(b);
    free(c);
    return 0;
}
