/* Authors: The fastbp developers
 * SPDX-License-Identifier: BSD-3-Clause
 *
 * Runtime instruction-set dispatch for the optimizer and reduction loops, the
 * backward pass's element-wise loops, the small matrix products, and the
 * element-wise loops of the activations (with fastbp's own exp, expm1 and
 * log1p) and of dropout.
 *
 * _simd_kernels.h is compiled once per target: the baseline of the platform
 * ("default", SSE2 on x86-64), and on x86-64 with GCC or Clang also AVX2 and
 * AVX-512 through function attributes, so a wheel built for any x86-64
 * machine runs each loop at the width of the machine it lands on. Which copy
 * runs is a table of function pointers, chosen once at import (the best the
 * CPU supports, or the one FASTBP_ISA names) and switchable for tests. Every
 * copy computes bitwise the same results (see _simd_kernels.h); the build
 * passes -ffp-contract=off so that no copy fuses a multiply and an add on its
 * own: the small products fuse them explicitly, the same way in every copy.
 */

#ifndef FASTBP_SIMD_H
#define FASTBP_SIMD_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(_MSC_VER) && !defined(restrict)
#define restrict __restrict
#endif

typedef struct fastbp_step {
    double scale;      /* gradients are divided by it */
    double lr;         /* SGD's rate, or Adam's bias-corrected step (> 0) */
    double alpha;      /* L2 strength for this array (0 for intercepts) */
    double momentum;
    int nesterov;
    double beta_1;
    double beta_2;
    double epsilon;
    double decay;      /* AdamW: lr * weight_decay (0 for Adam, intercepts) */
} fastbp_step;

#if defined(__GNUC__) && (defined(__x86_64__) || defined(_M_X64)) \
    && !defined(FASTBP_NO_ISA_DISPATCH)
#define FASTBP_X86_DISPATCH 1
#else
#define FASTBP_X86_DISPATCH 0
#endif

/* Whether dividing by scale is exactly multiplying by a constant: true when
   scale is a power of two whose reciprocal *r is a normal number of the
   loops' precision (float when single). Both are then the correctly rounded
   value of the same real quotient, so the loops may multiply (a division
   costs several times a multiplication) and still give bitwise the same
   results. Batch sizes are often powers of two. */
static inline int fastbp_exact_recip(double scale, int single, double *r)
{
    int e;
    if (!(scale > 0) || frexp(scale, &e) != 0.5)
        return 0;
    *r = 1.0 / scale;
    if (single)
        return *r >= 0x1p-126 && *r <= 0x1p126;
    return *r >= 0x1p-1022;
}

/* The element-wise kinds of _simd_kernels.h's activation loops (their own
   numbering: _core maps its Activation codes onto them). */
#define FASTBP_EW_LEAKY_RELU 0
#define FASTBP_EW_ELU 1
#define FASTBP_EW_SELU 2
#define FASTBP_EW_SOFTPLUS 3
#define FASTBP_EW_GELU 4
#define FASTBP_EW_SILU 5
#define FASTBP_EW_MISH 6
#define FASTBP_EW_RELU 7
#define FASTBP_EW_IDENTITY 8
#define FASTBP_EW_TANH 9
#define FASTBP_EW_LOGISTIC 10

/* The functions of the element-wise math test loop (fastbp_math_*). */
#define FASTBP_MATH_EXP 0
#define FASTBP_MATH_EXPM1 1
#define FASTBP_MATH_LOG1P 2
#define FASTBP_MATH_TANH 3
#define FASTBP_MATH_LOGISTIC 4

/* SELU's constants (Klambauer et al. 2017) and GELU's tanh-form constants. */
#define FASTBP_SELU_SCALE 1.0507009873554804934193349852946
#define FASTBP_SELU_ALPHA 1.6732632423543772848170429916717
#define FASTBP_GELU_C 0.79788456080286535587989211986876 /* sqrt(2 / pi) */
#define FASTBP_GELU_K 0.044715

/* Dropout's generator: 32 bits for unit j of a row whose 64-bit key (drawn
   once per row of X, layer and epoch) is (hi, lo): a Weyl sequence over the
   units whose step is the key's high half (made odd) and whose start is its
   low half, through MurmurHash3's 32-bit finalizer. Two rows share a shifted
   sequence only if their steps agree (2**-31 per pair of rows). 32-bit
   multiplies only: every target vectorizes it, and all give the same bits.
   A macro, so each target's loop inlines it. */
#define FASTBP_UNIT_BITS(out, lo, hi, j)                                        \
    do {                                                                        \
        uint32_t h_ = (lo) + ((hi) | 1u) * ((uint32_t) (j) + 1u);               \
        h_ ^= h_ >> 16;                                                         \
        h_ *= 0x85EBCA6Bu;                                                      \
        h_ ^= h_ >> 13;                                                         \
        h_ *= 0xC2B2AE35u;                                                      \
        h_ ^= h_ >> 16;                                                         \
        (out) = h_;                                                             \
    } while (0)

/* FASTBP_UNIT_BITS as a function, for _core's dropout_mask. */
static inline uint32_t fastbp_unit_bits(uint32_t lo, uint32_t hi, Py_ssize_t unit)
{
    uint32_t bits;
    FASTBP_UNIT_BITS(bits, lo, hi, unit);
    return bits;
}

/* FASTBP_VBYTES: the vector width of a target, for the small products. */
#define FASTBP_SUFFIX base
#define FASTBP_TARGET
#define FASTBP_VBYTES 16
#include "_simd_kernels.h"
#undef FASTBP_SUFFIX
#undef FASTBP_TARGET
#undef FASTBP_VBYTES

#if FASTBP_X86_DISPATCH
#define FASTBP_SUFFIX avx2
#define FASTBP_TARGET __attribute__((target("avx2,fma")))
#define FASTBP_VBYTES 32
#include "_simd_kernels.h"
#undef FASTBP_SUFFIX
#undef FASTBP_TARGET
#undef FASTBP_VBYTES

#define FASTBP_SUFFIX avx512
#define FASTBP_TARGET __attribute__((target("avx512f,avx512dq,avx512vl,avx512bw")))
#define FASTBP_VBYTES 64
#include "_simd_kernels.h"
#undef FASTBP_SUFFIX
#undef FASTBP_TARGET
#undef FASTBP_VBYTES
#endif

/* The instruction sets, in order; FASTBP_N_ISA of them exist in this build. */
#define FASTBP_ISA_BASE 0
#define FASTBP_ISA_AVX2 1
#define FASTBP_ISA_AVX512 2
#if FASTBP_X86_DISPATCH
#define FASTBP_N_ISA 3
#else
#define FASTBP_N_ISA 1
#endif

static const char *fastbp_isa_names[3] = {"default", "avx2", "avx512"};

typedef struct fastbp_kernels {
    void (*adam_d)(double *, const double *, double *, double *, Py_ssize_t,
                   const fastbp_step *);
    void (*adam_s)(float *, const float *, float *, float *, Py_ssize_t,
                   const fastbp_step *);
    void (*sgd_d)(double *, const double *, double *, Py_ssize_t, const fastbp_step *);
    void (*sgd_s)(float *, const float *, float *, Py_ssize_t, const fastbp_step *);
    double (*sumsq_d)(const double *, Py_ssize_t);
    double (*sumsq_s)(const float *, Py_ssize_t);
    void (*gemm_d)(Py_ssize_t, Py_ssize_t, Py_ssize_t, const double *, Py_ssize_t,
                   Py_ssize_t, const double *, Py_ssize_t, double *, Py_ssize_t);
    void (*gemm_s)(Py_ssize_t, Py_ssize_t, Py_ssize_t, const float *, Py_ssize_t,
                   Py_ssize_t, const float *, Py_ssize_t, float *, Py_ssize_t);
    void (*colsum_d)(double *, const double *, Py_ssize_t, Py_ssize_t, int);
    void (*colsum_s)(float *, const float *, Py_ssize_t, Py_ssize_t, int);
    void (*outer_d)(const double *, const double *, Py_ssize_t, Py_ssize_t, double *);
    void (*outer_s)(const float *, const float *, Py_ssize_t, Py_ssize_t, float *);
    void (*transpose_d)(const double *, Py_ssize_t, Py_ssize_t, double *);
    void (*transpose_s)(const float *, Py_ssize_t, Py_ssize_t, float *);
    void (*act_d)(double *, const double *, Py_ssize_t, Py_ssize_t, int, double,
                  double *);
    void (*act_s)(float *, const float *, Py_ssize_t, Py_ssize_t, int, double, float *);
    void (*act_grad_d)(double *, const double *, const double *, Py_ssize_t, int,
                       double);
    void (*act_grad_s)(float *, const float *, const float *, Py_ssize_t, int, double);
    void (*drop_d)(double *, Py_ssize_t, uint32_t, uint32_t, uint32_t, double);
    void (*drop_s)(float *, Py_ssize_t, uint32_t, uint32_t, uint32_t, double);
    void (*drop_grad_d)(double *, double *, Py_ssize_t, uint32_t, uint32_t, uint32_t,
                        double);
    void (*drop_grad_s)(float *, float *, Py_ssize_t, uint32_t, uint32_t, uint32_t,
                        double);
    void (*math_d)(double *, Py_ssize_t, int);
    void (*math_s)(float *, Py_ssize_t, int);
} fastbp_kernels;

#define FASTBP_TABLE(sfx)                                                       \
    {fastbp_adam_d_##sfx, fastbp_adam_s_##sfx, fastbp_sgd_d_##sfx,              \
     fastbp_sgd_s_##sfx, fastbp_sumsq_d_##sfx, fastbp_sumsq_s_##sfx,            \
     fastbp_gemm_d_##sfx, fastbp_gemm_s_##sfx, fastbp_colsum_d_##sfx,           \
     fastbp_colsum_s_##sfx, fastbp_outer_d_##sfx, fastbp_outer_s_##sfx,         \
     fastbp_transpose_d_##sfx, fastbp_transpose_s_##sfx,                        \
     fastbp_act_d_##sfx, fastbp_act_s_##sfx, fastbp_act_grad_d_##sfx,           \
     fastbp_act_grad_s_##sfx,                                                   \
     fastbp_drop_d_##sfx, fastbp_drop_s_##sfx, fastbp_drop_grad_d_##sfx,        \
     fastbp_drop_grad_s_##sfx, fastbp_math_d_##sfx, fastbp_math_s_##sfx}

static const fastbp_kernels fastbp_tables[FASTBP_N_ISA] = {
    FASTBP_TABLE(base),
#if FASTBP_X86_DISPATCH
    FASTBP_TABLE(avx2),
    FASTBP_TABLE(avx512),
#endif
};

static fastbp_kernels fastbp_k = FASTBP_TABLE(base);
static int fastbp_isa_current = FASTBP_ISA_BASE;

/* Whether this CPU runs the given instruction set. */
static int fastbp_isa_supported(int isa)
{
    if (isa < 0 || isa >= FASTBP_N_ISA)
        return 0;
#if FASTBP_X86_DISPATCH
    __builtin_cpu_init();
    if (isa == FASTBP_ISA_AVX2)
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (isa == FASTBP_ISA_AVX512)
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq")
               && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw");
#endif
    return 1;
}

/* Use the given instruction set; 0 if this build or CPU lacks it. Not to be
   called while a kernel runs (fits read the table without a lock). */
static int fastbp_isa_set(int isa)
{
    if (!fastbp_isa_supported(isa))
        return 0;
    fastbp_k = fastbp_tables[isa];
    fastbp_isa_current = isa;
    return 1;
}

/* The best instruction set this CPU supports. */
static int fastbp_isa_best(void)
{
    int isa;
    for (isa = FASTBP_N_ISA - 1; isa > 0; isa--)
        if (fastbp_isa_supported(isa))
            return isa;
    return FASTBP_ISA_BASE;
}

#endif /* FASTBP_SIMD_H */
