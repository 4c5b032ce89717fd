/* Authors: The fastbp developers
 * SPDX-License-Identifier: BSD-3-Clause
 *
 * The optimizer and reduction loops, the small matrix products and the
 * element-wise loops (activations, dropout), instantiated once per instruction set by
 * _simd.h: it defines FASTBP_SUFFIX (the name suffix) and FASTBP_TARGET (a
 * function attribute, or nothing) and includes this file once per target.
 *
 * Every loop does, element by element, exactly the operations of its scalar
 * form in the order written: IEEE addition, multiplication, division and
 * square root are correctly rounded at every vector width, and the build
 * turns off floating-point contraction (no implicit fused multiply-add), so
 * each target gives bitwise the same results and only the speed differs. The
 * small products fuse their multiply-adds explicitly (fma rounds once, at
 * every target alike).
 */

#define FASTBP_CAT_(a, b) a##_##b
#define FASTBP_CAT(a, b) FASTBP_CAT_(a, b)
#define FASTBP_NAME(name) FASTBP_CAT(name, FASTBP_SUFFIX)

/* One Adam loop; G is the scaled gradient of element k, DECAYED (a constant)
   whether AdamW's decoupled decay d * param[k] comes off first. */
#define FASTBP_ADAM_LOOP(T, SQRT, G, DECAYED)                                   \
    for (k = 0; k < size; k++) {                                                \
        T g = G;                                                                \
        T mk = b1 * m[k] + c1 * g;                                              \
        T vk = b2 * v[k] + c2 * (g * g);                                        \
        T step_k = (neg_lr * mk) / (SQRT(vk) + eps);                            \
        m[k] = mk;                                                              \
        v[k] = vk;                                                              \
        param[k] = (DECAYED) ? (param[k] - d * param[k]) + step_k               \
                             : param[k] + step_k;                               \
    }

/* Adam: g = (grad + alpha*param) / scale; m = b1 m + (1-b1) g;
   v = b2 v + (1-b2) g*g; param += -lr m / (sqrt(v) + eps); AdamW (decay d
   != 0) takes d * param off param first. */
#define FASTBP_ADAM(T, SQRT, name)                                              \
    FASTBP_TARGET static void FASTBP_NAME(name)(                                \
        T *restrict param, const T *restrict grad, T *restrict m,               \
        T *restrict v, Py_ssize_t size, const fastbp_step *step)                \
    {                                                                           \
        const T a = (T) step->alpha, inv = (T) step->scale;                     \
        const T b1 = (T) step->beta_1, b2 = (T) step->beta_2;                   \
        const T c1 = (T) (1.0 - step->beta_1), c2 = (T) (1.0 - step->beta_2);   \
        const T neg_lr = (T) (-step->lr), eps = (T) step->epsilon;              \
        const T d = (T) step->decay;                                            \
        double r;                                                               \
        Py_ssize_t k;                                                           \
        if (fastbp_exact_recip(step->scale, sizeof(T) == sizeof(float), &r)) {  \
            const T rinv = (T) r; /* x / inv == x * rinv, bitwise */            \
            if (step->decay != 0)                                               \
                FASTBP_ADAM_LOOP(T, SQRT, (grad[k] + a * param[k]) * rinv, 1)   \
            else                                                                \
                FASTBP_ADAM_LOOP(T, SQRT, (grad[k] + a * param[k]) * rinv, 0)   \
            return;                                                             \
        }                                                                       \
        if (step->decay != 0)                                                   \
            FASTBP_ADAM_LOOP(T, SQRT, (grad[k] + a * param[k]) / inv, 1)        \
        else                                                                    \
            FASTBP_ADAM_LOOP(T, SQRT, (grad[k] + a * param[k]) / inv, 0)        \
    }

/* SGD with momentum mu and rate lr: v = mu v - lr g; param += v, or with
   Nesterov's momentum param += mu v - lr g. */
#define FASTBP_SGD(T, name)                                                     \
    FASTBP_TARGET static void FASTBP_NAME(name)(                                \
        T *restrict param, const T *restrict grad, T *restrict velocity,        \
        Py_ssize_t size, const fastbp_step *step)                               \
    {                                                                           \
        const T a = (T) step->alpha, inv = (T) step->scale;                     \
        const T lr = (T) step->lr, mu = (T) step->momentum;                     \
        double r;                                                               \
        Py_ssize_t k;                                                           \
        if (fastbp_exact_recip(step->scale, sizeof(T) == sizeof(float), &r)) {  \
            const T rinv = (T) r; /* x / inv == x * rinv, bitwise */            \
            if (step->nesterov) {                                               \
                for (k = 0; k < size; k++) {                                    \
                    T g = (grad[k] + a * param[k]) * rinv;                      \
                    T vk = mu * velocity[k] - lr * g;                           \
                    velocity[k] = vk;                                           \
                    param[k] = param[k] + (mu * vk - lr * g);                   \
                }                                                               \
            } else {                                                            \
                for (k = 0; k < size; k++) {                                    \
                    T g = (grad[k] + a * param[k]) * rinv;                      \
                    T vk = mu * velocity[k] - lr * g;                           \
                    velocity[k] = vk;                                           \
                    param[k] = param[k] + vk;                                   \
                }                                                               \
            }                                                                   \
            return;                                                             \
        }                                                                       \
        if (step->nesterov) {                                                   \
            for (k = 0; k < size; k++) {                                        \
                T g = (grad[k] + a * param[k]) / inv;                           \
                T vk = mu * velocity[k] - lr * g;                               \
                velocity[k] = vk;                                               \
                param[k] = param[k] + (mu * vk - lr * g);                       \
            }                                                                   \
        } else {                                                                \
            for (k = 0; k < size; k++) {                                        \
                T g = (grad[k] + a * param[k]) / inv;                           \
                T vk = mu * velocity[k] - lr * g;                               \
                velocity[k] = vk;                                               \
                param[k] = param[k] + vk;                                       \
            }                                                                   \
        }                                                                       \
    }

/* sum(x**2) in double with four running sums, s_r over x[4t + r], combined
   as (s0+s1)+(s2+s3); the elements past the last multiple of four go to s0.
   With GCC/Clang the four sums are the lanes of one 4-double vector. */
#if defined(__GNUC__)
#define FASTBP_SUM_SQUARES(T, name)                                             \
    FASTBP_TARGET static double FASTBP_NAME(name)(const T *restrict x,          \
                                                  Py_ssize_t size)              \
    {                                                                           \
        typedef double D4 __attribute__((vector_size(4 * sizeof(double))));     \
        typedef T T4 __attribute__((vector_size(4 * sizeof(T))));               \
        D4 acc = {0, 0, 0, 0}, xv;                                              \
        T4 raw;                                                                 \
        double s0;                                                              \
        Py_ssize_t k, end = size - size % 4;                                    \
        for (k = 0; k < end; k += 4) {                                          \
            memcpy(&raw, x + k, sizeof(T4));                                    \
            xv = __builtin_convertvector(raw, D4);                              \
            acc = acc + xv * xv;                                                \
        }                                                                       \
        s0 = acc[0];                                                            \
        for (k = end; k < size; k++)                                            \
            s0 += (double) x[k] * (double) x[k];                                \
        return (s0 + acc[1]) + (acc[2] + acc[3]);                               \
    }
#else
#define FASTBP_SUM_SQUARES(T, name)                                             \
    FASTBP_TARGET static double FASTBP_NAME(name)(const T *restrict x,          \
                                                  Py_ssize_t size)              \
    {                                                                           \
        double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;                          \
        Py_ssize_t k, end = size - size % 4;                                    \
        for (k = 0; k < end; k += 4) {                                          \
            s0 += (double) x[k] * (double) x[k];                                \
            s1 += (double) x[k + 1] * (double) x[k + 1];                        \
            s2 += (double) x[k + 2] * (double) x[k + 2];                        \
            s3 += (double) x[k + 3] * (double) x[k + 3];                        \
        }                                                                       \
        for (k = end; k < size; k++)                                            \
            s0 += (double) x[k] * (double) x[k];                                \
        return (s0 + s1) + (s2 + s3);                                           \
    }
#endif

/* The intercept gradient: gb[j] = (gb[j] if accumulate else 0) + d[0, j] +
   d[1, j] + ..., row by row. d: (n_rows, n_cols), row-major. */
#define FASTBP_COLUMN_SUMS(T, name)                                             \
    FASTBP_TARGET static void FASTBP_NAME(name)(                                \
        T *restrict gb, const T *restrict d, Py_ssize_t n_rows,                 \
        Py_ssize_t n_cols, int accumulate)                                      \
    {                                                                           \
        Py_ssize_t i, j;                                                        \
        if (!accumulate)                                                        \
            for (j = 0; j < n_cols; j++)                                        \
                gb[j] = 0;                                                      \
        for (i = 0; i < n_rows; i++)                                            \
            for (j = 0; j < n_cols; j++)                                        \
                gb[j] = gb[j] + d[i * n_cols + j];                              \
    }

/* out[i, j] = d[i] * w[j]: d @ W.T for a single output unit, one product per
   entry as a matrix product gives it. out: (n_rows, n_in), row-major. */
#define FASTBP_OUTER(T, name)                                                   \
    FASTBP_TARGET static void FASTBP_NAME(name)(                                \
        const T *restrict d, const T *restrict w, Py_ssize_t n_rows,            \
        Py_ssize_t n_in, T *restrict out)                                       \
    {                                                                           \
        Py_ssize_t i, j;                                                        \
        for (i = 0; i < n_rows; i++) {                                          \
            const T di = d[i];                                                  \
            for (j = 0; j < n_in; j++)                                          \
                out[i * n_in + j] = di * w[j];                                  \
        }                                                                       \
    }

/* dst = src.T: src (rows, cols) and dst (cols, rows), row-major. Eight rows
   of src at a time, so that each write is a contiguous run of dst. */
#define FASTBP_TRANSPOSE(T, name)                                               \
    FASTBP_TARGET static void FASTBP_NAME(name)(                                \
        const T *restrict src, Py_ssize_t rows, Py_ssize_t cols,                \
        T *restrict dst)                                                        \
    {                                                                           \
        Py_ssize_t i = 0, j, q;                                                 \
        for (; i + 8 <= rows; i += 8)                                           \
            for (j = 0; j < cols; j++)                                          \
                for (q = 0; q < 8; q++)                                         \
                    dst[j * rows + i + q] = src[(i + q) * cols + j];            \
        for (; i < rows; i++)                                                   \
            for (j = 0; j < cols; j++)                                          \
                dst[j * rows + i] = src[i * cols + j];                          \
    }

/* Small matrix products, c[m, n] = op(a)[m, k] @ b[k, n], row-major, with
   op(a)[i, p] = a[i * ars + p * acs] (a or its transpose by the strides).
   Each c[i, j] is fma(op(a)[i, k-1], b[k-1, j], ... fma(op(a)[i, 1], b[1, j],
   op(a)[i, 0] b[0, j] + 0)): one fused multiply-add per term, in that order.
   A fused multiply-add rounds once, so it is the same number at every
   target: the AVX2 and AVX-512 copies run the FMA instruction, and the
   baseline (which has none) calls the C library's fma, which is correctly
   rounded too but slow, so that copy's products go to BLAS by default
   (see _core's set_small_gemm). Without FMA this core reaches two thirds of
   its peak on these shapes, with it the peak.
   Blocks of 4 rows (then single rows) by vectors of columns accumulate in
   registers, with GCC/Clang vector types: two vectors of the target's width
   (FASTBP_VBYTES), then one, then 16-byte vectors for the columns left over.
   Vector arithmetic is lane by lane, so the order of each sum is the same at
   every width. The columns left after that, and every column with other
   compilers, take the same sums on scalars. A product with a single column
   and op(a) read down contiguous rows (the gradient of a single output unit)
   runs its vectors down the rows instead. */
#define FASTBP_FMA(T, x, y, z)                                                  \
    (sizeof(T) == sizeof(float)                                                 \
         ? (T) __builtin_fmaf((float) (x), (float) (y), (float) (z))            \
         : (T) __builtin_fma((double) (x), (double) (y), (double) (z)))
#if defined(__GNUC__)
/* Vector fused multiply-adds, lane by lane: fastbp_fma_<tag>(x, s, u) is
   fma(s, u[l], x[l]) for a scalar s, fastbp_fmav_<tag>(x, w, u) is
   fma(w[l], u[l], x[l]). Functions on whole vectors, so that GCC keeps the
   operands in registers and emits one instruction per call where the target
   has FMA; fastbp_fmap_<tag>(x, s, ptr) takes u from memory at ptr (any
   alignment). Tags: d/s (double/float) by the target's width (w) and by 16
   bytes. */
#define FASTBP_VFMA_FNS(T, TAG, BYTES)                                          \
    typedef T FASTBP_NAME(fastbp_v##TAG) __attribute__((vector_size(BYTES)));   \
    FASTBP_TARGET static inline FASTBP_NAME(fastbp_v##TAG)                      \
        FASTBP_NAME(fastbp_fma_##TAG)(FASTBP_NAME(fastbp_v##TAG) x, T s,        \
                                      FASTBP_NAME(fastbp_v##TAG) u)             \
    {                                                                           \
        Py_ssize_t l;                                                           \
        for (l = 0; l < (Py_ssize_t) (BYTES / sizeof(T)); l++)                  \
            x[l] = FASTBP_FMA(T, s, u[l], x[l]);                                \
        return x;                                                               \
    }                                                                           \
    typedef T FASTBP_NAME(fastbp_u##TAG)                                        \
        __attribute__((vector_size(BYTES), aligned(sizeof(T)), may_alias));     \
    FASTBP_TARGET static inline FASTBP_NAME(fastbp_v##TAG)                      \
        FASTBP_NAME(fastbp_fmap_##TAG)(FASTBP_NAME(fastbp_v##TAG) x, T s,       \
                                       const T *ptr)                            \
    {                                                                           \
        return FASTBP_NAME(fastbp_fma_##TAG)(                                   \
            x, s, *(const FASTBP_NAME(fastbp_u##TAG) *) ptr);                   \
    }                                                                           \
    FASTBP_TARGET static inline FASTBP_NAME(fastbp_v##TAG)                      \
        FASTBP_NAME(fastbp_fmav_##TAG)(FASTBP_NAME(fastbp_v##TAG) x,            \
                                       FASTBP_NAME(fastbp_v##TAG) w,            \
                                       FASTBP_NAME(fastbp_v##TAG) u)            \
    {                                                                           \
        Py_ssize_t l;                                                           \
        for (l = 0; l < (Py_ssize_t) (BYTES / sizeof(T)); l++)                  \
            x[l] = FASTBP_FMA(T, w[l], u[l], x[l]);                             \
        return x;                                                               \
    }
FASTBP_VFMA_FNS(double, dw, FASTBP_VBYTES)
FASTBP_VFMA_FNS(double, d16, 16)
FASTBP_VFMA_FNS(float, sw, FASTBP_VBYTES)
FASTBP_VFMA_FNS(float, s16, 16)
#define FASTBP_VFMA(S, W, acc, s, u)                                            \
    (acc) = FASTBP_NAME(fastbp_fma_##S##W)((acc), (s), (u))
/* acc = fma(s, the vector at T pointer ptr (any alignment), acc). */
#define FASTBP_VFMA_P(S, W, acc, s, ptr)                                        \
    (acc) = FASTBP_NAME(fastbp_fmap_##S##W)((acc), (s), (ptr))
#define FASTBP_VFMA_VV(S, W, acc, w, u)                                         \
    (acc) = FASTBP_NAME(fastbp_fmav_##S##W)((acc), (w), (u))
/* Rows [i, i + RB) by NV vectors of type VT (LEN lanes each) from column j0. */
#define FASTBP_GEMM_RB(T, S, VT, W, LEN, NV, RB)                                \
    for (; j0 + (NV) * (LEN) <= n; j0 += (NV) * (LEN)) {                        \
        VT x[RB][NV], u[NV];                                                    \
        Py_ssize_t q, v;                                                        \
        for (q = 0; q < (RB); q++)                                                 \
            for (v = 0; v < (NV); v++)                                          \
                x[q][v] = (VT) {0};                                             \
        for (p = 0; p < k; p++) {                                               \
            const T *bp = b + p * ldb + j0;                                     \
            for (v = 0; v < (NV); v++)                                          \
                memcpy(&u[v], bp + v * (LEN), sizeof(VT));                      \
            _Pragma("GCC unroll 8")                                             \
            for (q = 0; q < (RB); q++) {                                           \
                const T aq = a[(i + q) * ars + p * acs];                        \
                _Pragma("GCC unroll 2")                                         \
                for (v = 0; v < (NV); v++)                                      \
                    FASTBP_VFMA(S, W, x[q][v], aq, u[v]);                       \
            }                                                                   \
        }                                                                       \
        for (q = 0; q < (RB); q++)                                                 \
            for (v = 0; v < (NV); v++)                                          \
                memcpy(c + (i + q) * ldc + j0 + v * (LEN), &x[q][v], sizeof(VT)); \
    }

/* Row i by one vector of type VT (LEN lanes) from column j0. */
#define FASTBP_GEMM_R1(T, S, VT, W, LEN)                                        \
    for (; j0 + (LEN) <= n; j0 += (LEN)) {                                      \
        VT x0 = {0}, u;                                                         \
        for (p = 0; p < k; p++) {                                               \
            memcpy(&u, b + p * ldb + j0, sizeof(VT));                           \
            FASTBP_VFMA(S, W, x0, a[i * ars + p * acs], u);                     \
        }                                                                       \
        memcpy(c + i * ldc + j0, &x0, sizeof(VT));                              \
    }

/* Rows [i, i + NV * LEN) of a single-column product whose op(a) runs down
   contiguous rows: NV vectors of type VT (LEN lanes each). */
#define FASTBP_DOWN_ROWS(T, S, VT, W, LEN, NV)                                  \
    for (; i + (NV) * (LEN) <= m; i += (NV) * (LEN)) {                          \
        VT x[NV];                                                               \
        Py_ssize_t v, t;                                                        \
        for (v = 0; v < (NV); v++)                                              \
            x[v] = (VT) {0};                                                    \
        for (p = 0; p < k; p++) {                                               \
            const T bp = b[p * ldb];                                            \
            _Pragma("GCC unroll 4")                                             \
            for (v = 0; v < (NV); v++) {                                        \
                FASTBP_VFMA_P(S, W, x[v], bp, a + i + v * (LEN) + p * acs);     \
            }                                                                   \
        }                                                                       \
        for (v = 0; v < (NV); v++) {                                            \
            T lanes_[LEN];                                                      \
            memcpy(lanes_, &x[v], sizeof(VT));                                  \
            for (t = 0; t < (LEN); t++)                                         \
                c[(i + v * (LEN) + t) * ldc] = lanes_[t];                       \
        }                                                                       \
    }

/* Dot products of rows i..i+R-1 of a (contiguous) with the column b
   (contiguous): each is split into FASTBP_DOT_LANES(T) partial sums, lane t
   taking the terms p = t mod lanes in order: 64 bytes of lanes, held in
   G = 64 / FASTBP_VBYTES vectors of the target's width (lane t in vector
   t / L), so that every target does the same arithmetic lane by lane. The
   lanes are then added pairwise in a fixed tree, and the terms past the last
   whole 64 bytes fused on one by one after it. */
#define FASTBP_DOT_LANES(T) ((Py_ssize_t) (64 / sizeof(T)))
#define FASTBP_DOT(T, S, i0, R)                                                 \
    {                                                                           \
        typedef T V __attribute__((vector_size(FASTBP_VBYTES)));                \
        typedef FASTBP_NAME(fastbp_u##S##w) U;                                  \
        enum { G = 64 / FASTBP_VBYTES };                                        \
        const Py_ssize_t P = FASTBP_DOT_LANES(T), kend = k - k % P;             \
        const Py_ssize_t L = FASTBP_VBYTES / sizeof(T);                         \
        V acc[R][G], w[G], u;                                                   \
        T lanes[FASTBP_VBYTES / sizeof(T)], part[G];                            \
        Py_ssize_t q, g, h, t;                                                  \
        for (q = 0; q < (R); q++)                                               \
            for (g = 0; g < G; g++)                                             \
                acc[q][g] = (V) {0};                                            \
        for (p = 0; p < kend; p += P) {                                         \
            for (g = 0; g < G; g++)                                             \
                w[g] = *(const U *) (b + p + g * L);                            \
            _Pragma("GCC unroll 8")                                             \
            for (q = 0; q < (R); q++) {                                         \
                _Pragma("GCC unroll 4")                                         \
                for (g = 0; g < G; g++) {                                       \
                    u = *(const U *) (a + ((i0) + q) * ars + p + g * L);        \
                    FASTBP_VFMA_VV(S, w, acc[q][g], u, w[g]);                   \
                }                                                               \
            }                                                                   \
        }                                                                       \
        for (q = 0; q < (R); q++) {                                             \
            T sum;                                                              \
            /* The tree over all P lanes is the tree over each vector's L   \
               lanes, then over the G vectors' sums. */                      \
            for (g = 0; g < G; g++) {                                           \
                memcpy(lanes, &acc[q][g], sizeof(V));                           \
                for (h = L / 2; h >= 1; h /= 2)                                 \
                    for (t = 0; t < h; t++)                                     \
                        lanes[t] = lanes[2 * t] + lanes[2 * t + 1];             \
                part[g] = lanes[0];                                             \
            }                                                                   \
            for (h = G / 2; h >= 1; h /= 2)                                     \
                for (t = 0; t < h; t++)                                         \
                    part[t] = part[2 * t] + part[2 * t + 1];                    \
            sum = part[0];                                                      \
            for (p = kend; p < k; p++)                                          \
                sum = FASTBP_FMA(T, a[((i0) + q) * ars + p], b[p], sum);        \
            c[((i0) + q) * ldc] = sum;                                          \
        }                                                                       \
    }

/* Rows per register block: 6 with AVX2's 16 vector registers (12 running
   sums of 2 x 4 columns: enough independent fused multiply-adds in flight),
   4 elsewhere. Each entry's sum is the same whichever block computes it. */
#if FASTBP_VBYTES == 32
#define FASTBP_GEMM_ROWS 6
#else
#define FASTBP_GEMM_ROWS 4
#endif
#define FASTBP_GEMM_BLOCKS(T, S)                                                \
    typedef T V __attribute__((vector_size(FASTBP_VBYTES)));                    \
    typedef T V16 __attribute__((vector_size(16)));                             \
    const Py_ssize_t L = FASTBP_VBYTES / sizeof(T), L16 = 16 / sizeof(T);       \
    if (n == 1 && ars == 1) {                                                   \
        /* c[i] = sum_p a[i + p acs] b[p ldb]: vectors down the rows, up to     \
           four at a time (independent chains of fused multiply-adds). */       \
        FASTBP_DOWN_ROWS(T, S, V, w, L, 4)                                      \
        FASTBP_DOWN_ROWS(T, S, V, w, L, 2)                                      \
        FASTBP_DOWN_ROWS(T, S, V, w, L, 1)                                      \
        FASTBP_DOWN_ROWS(T, S, V16, 16, L16, 4)                                 \
        FASTBP_DOWN_ROWS(T, S, V16, 16, L16, 2)                                 \
        FASTBP_DOWN_ROWS(T, S, V16, 16, L16, 1)                                 \
    }                                                                           \
    if (n == 1 && acs == 1 && ldb == 1 && k >= FASTBP_DOT_LANES(T)) {           \
        /* A single column over contiguous rows (the output unit's forward      \
           product): dot products, FASTBP_DOT_LANES(T) partial sums each.   */  \
        for (; FASTBP_VBYTES == 64 && i + 8 <= m; i += 8) {                     \
            FASTBP_DOT(T, S, i, 8)                                              \
        }                                                                       \
        for (; i + 4 <= m; i += 4) {                                            \
            FASTBP_DOT(T, S, i, 4)                                              \
        }                                                                       \
    }                                                                           \
    if (n == 1) {                                                               \
        /* A single column (the output unit's forward product): eight rows      \
           at a time, as eight independent sums. */                             \
        for (; i + 8 <= m; i += 8) {                                            \
            T s[8] = {0, 0, 0, 0, 0, 0, 0, 0};                                  \
            Py_ssize_t q;                                                       \
            for (p = 0; p < k; p++) {                                           \
                const T bp = b[p * ldb];                                        \
                for (q = 0; q < 8; q++)                                         \
                    s[q] = FASTBP_FMA(T, a[(i + q) * ars + p * acs], bp, s[q]); \
            }                                                                   \
            for (q = 0; q < 8; q++)                                             \
                c[(i + q) * ldc] = s[q];                                        \
        }                                                                       \
    }                                                                           \
    for (; FASTBP_GEMM_ROWS > 4 && i + FASTBP_GEMM_ROWS <= m;                  \
         i += FASTBP_GEMM_ROWS) {                                               \
        j0 = 0;                                                                 \
        FASTBP_GEMM_RB(T, S, V, w, L, 2, FASTBP_GEMM_ROWS)                      \
        FASTBP_GEMM_RB(T, S, V, w, L, 1, FASTBP_GEMM_ROWS)                      \
        if (L16 < L) {                                                          \
            FASTBP_GEMM_RB(T, S, V16, 16, L16, 1, FASTBP_GEMM_ROWS)             \
        }                                                                       \
        FASTBP_GEMM_TAIL(T, i, FASTBP_GEMM_ROWS, j0)                            \
    }                                                                           \
    for (; i + 4 <= m; i += 4) {                                                \
        j0 = 0;                                                                 \
        FASTBP_GEMM_RB(T, S, V, w, L, 2, 4)                                     \
        FASTBP_GEMM_RB(T, S, V, w, L, 1, 4)                                     \
        if (L16 < L) {                                                          \
            FASTBP_GEMM_RB(T, S, V16, 16, L16, 1, 4)                            \
        }                                                                       \
        FASTBP_GEMM_TAIL(T, i, 4, j0)                                           \
    }                                                                           \
    for (; i < m; i++) {                                                        \
        j0 = 0;                                                                 \
        FASTBP_GEMM_R1(T, S, V, w, L)                                           \
        if (L16 < L) {                                                          \
            FASTBP_GEMM_R1(T, S, V16, 16, L16)                                  \
        }                                                                       \
        FASTBP_GEMM_TAIL(T, i, 1, j0)                                           \
    }
#else
#define FASTBP_GEMM_BLOCKS(T, S)
#endif

/* Rows [i0, i0 + rows), columns [j_from, n), on scalars: four rows at a
   time, as four independent sums. */
#define FASTBP_GEMM_TAIL(T, i0, rows, j_from)                                   \
    for (r = 0; r < (rows); r += 4) {                                           \
        const Py_ssize_t q = (i0) + r;                                          \
        for (j = (j_from); j < n; j++) {                                        \
            if ((rows) - r >= 4) {                                              \
                T s0 = 0, s1 = 0, s2 = 0, s3 = 0;                               \
                for (p = 0; p < k; p++) {                                       \
                    const T bj = b[p * ldb + j];                                \
                    s0 = FASTBP_FMA(T, a[q * ars + p * acs], bj, s0);           \
                    s1 = FASTBP_FMA(T, a[(q + 1) * ars + p * acs], bj, s1);     \
                    s2 = FASTBP_FMA(T, a[(q + 2) * ars + p * acs], bj, s2);     \
                    s3 = FASTBP_FMA(T, a[(q + 3) * ars + p * acs], bj, s3);     \
                }                                                               \
                c[q * ldc + j] = s0;                                            \
                c[(q + 1) * ldc + j] = s1;                                      \
                c[(q + 2) * ldc + j] = s2;                                      \
                c[(q + 3) * ldc + j] = s3;                                      \
            } else {                                                            \
                Py_ssize_t t;                                                   \
                for (t = q; t < (i0) + (rows); t++) {                           \
                    T acc = 0;                                                  \
                    for (p = 0; p < k; p++)                                     \
                        acc = FASTBP_FMA(T, a[t * ars + p * acs], b[p * ldb + j], acc); \
                    c[t * ldc + j] = acc;                                       \
                }                                                               \
            }                                                                   \
        }                                                                       \
    }

#define FASTBP_GEMM(T, S, name)                                                 \
    FASTBP_TARGET static void FASTBP_NAME(name)(                                \
        Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const T *restrict a,          \
        Py_ssize_t ars, Py_ssize_t acs, const T *restrict b, Py_ssize_t ldb,    \
        T *restrict c, Py_ssize_t ldc)                                          \
    {                                                                           \
        Py_ssize_t i = 0, j0 = 0, j, p, r;                                      \
        FASTBP_GEMM_BLOCKS(T, S)                                                \
        FASTBP_GEMM_TAIL(T, i, m - i, 0)                                        \
    }

/* ------------------------------------------------------------------------
 * Element-wise math of fastbp's own: exp, expm1, and log1p on [0, 1], in
 * plain C so that GCC vectorizes the loops that call them (libm's scalar
 * calls do not), with bitwise the same results at every width.
 *
 * exp and expm1: x = k ln2 + r, |r| <= ln2/2 (k by adding 1.5 * 2**52, or
 * 1.5 * 2**23 in float, which rounds to an integer; ln2 in two parts, the
 * first with enough trailing zero bits that k times it is exact), expm1(r)
 * by its Taylor polynomial (degree 13 in double, 8 in float: the truncation
 * is under a tenth of an ulp), and 2**k built from its bits. The argument is
 * first clamped to where the result saturates: beyond it exp overflows to
 * inf or underflows to 0 and expm1 reaches -1 (a NaN passes the clamps and
 * stays NaN). exp scales by 2**k in two halves, so results that are
 * subnormal round once. expm1 = 2 (2**(k-1) p + (2**(k-1) - 1/2)), exact but
 * for the one rounding of the sum, or p itself when k = 0.
 *
 * log1p(y) for 0 <= y <= 1 (softplus's log(1 + exp(-|v|))): u = 1 + y and
 * the part of y that rounding lost, c = y - (u - 1); log u = e ln2 + log m,
 * m = u or u/2 in [sqrt(1/2), sqrt(2)], log m = 2 atanh(s), s = (m-1)/(m+1),
 * |s| < 0.172, by its series to s**21 (s**11 in float); log1p(y) =
 * e ln2 + log m + c/u.
 *
 * Each function is a few ulp from the correctly rounded result
 * (tests/test_elementwise.py sweeps them against NumPy).
 * ------------------------------------------------------------------------ */
#ifndef FASTBP_EW_CONSTANTS
#define FASTBP_EW_CONSTANTS
#define FASTBP_LOG2E 1.4426950408889634
#define FASTBP_LN2 0.6931471805599453
#define FASTBP_SQRT2 1.4142135623730951
#define FASTBP_LN2_HI_D 0.6931471805598903   /* 42 significant bits */
#define FASTBP_LN2_LO_D 5.497923018708371e-14
#define FASTBP_MAGIC_D 6755399441055744.0    /* 1.5 * 2**52 */
#define FASTBP_LN2_HI_S 0.693359375f         /* 355 / 512 */
#define FASTBP_LN2_LO_S -2.12194440e-4f
#define FASTBP_MAGIC_S 12582912.0f           /* 1.5 * 2**23 */
#endif

FASTBP_TARGET static inline uint64_t FASTBP_NAME(fastbp_bits_d)(double x)
{
    uint64_t u;
    memcpy(&u, &x, sizeof(u));
    return u;
}

FASTBP_TARGET static inline double FASTBP_NAME(fastbp_of_bits_d)(uint64_t u)
{
    double x;
    memcpy(&x, &u, sizeof(x));
    return x;
}

FASTBP_TARGET static inline uint32_t FASTBP_NAME(fastbp_bits_s)(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof(u));
    return u;
}

FASTBP_TARGET static inline float FASTBP_NAME(fastbp_of_bits_s)(uint32_t u)
{
    float x;
    memcpy(&x, &u, sizeof(x));
    return x;
}

/* expm1(r) for |r| <= ln2/2 (a little more after rounding): Taylor to r**13. */
FASTBP_TARGET static inline double FASTBP_NAME(fastbp_expm1_poly_d)(double r)
{
    double q = 1.0 / 6227020800.0;
    q = 1.0 / 479001600.0 + r * q;
    q = 1.0 / 39916800.0 + r * q;
    q = 1.0 / 3628800.0 + r * q;
    q = 1.0 / 362880.0 + r * q;
    q = 1.0 / 40320.0 + r * q;
    q = 1.0 / 5040.0 + r * q;
    q = 1.0 / 720.0 + r * q;
    q = 1.0 / 120.0 + r * q;
    q = 1.0 / 24.0 + r * q;
    q = 1.0 / 6.0 + r * q;
    q = 0.5 + r * q;
    return r + (r * r) * q;
}

/* expm1(r) for |r| <= ln2/2 in float: Taylor to r**8. */
FASTBP_TARGET static inline float FASTBP_NAME(fastbp_expm1_poly_s)(float r)
{
    float q = 1.0f / 40320.0f;
    q = 1.0f / 5040.0f + r * q;
    q = 1.0f / 720.0f + r * q;
    q = 1.0f / 120.0f + r * q;
    q = 1.0f / 24.0f + r * q;
    q = 1.0f / 6.0f + r * q;
    q = 0.5f + r * q;
    return r + (r * r) * q;
}

FASTBP_TARGET static inline double FASTBP_NAME(fastbp_exp_d)(double x)
{
    double t, kd, r, p;
    uint64_t k, k1, k2;
    x = x > 710.0 ? 710.0 : x;     /* exp(710) = inf */
    x = x < -746.0 ? -746.0 : x;   /* exp(-746) = 0 */
    t = x * FASTBP_LOG2E + FASTBP_MAGIC_D;
    kd = t - FASTBP_MAGIC_D;
    r = (x - kd * FASTBP_LN2_HI_D) - kd * FASTBP_LN2_LO_D;
    p = FASTBP_NAME(fastbp_expm1_poly_d)(r);
    /* k in two's complement, then its halves k1 = floor(k/2) and k2 = k - k1,
       each a normal power of two for -1077 <= k <= 1025. */
    k = FASTBP_NAME(fastbp_bits_d)(t) - FASTBP_NAME(fastbp_bits_d)(FASTBP_MAGIC_D);
    k1 = ((k + 2048u) >> 1) - 1024u;
    k2 = k - k1;
    return ((1.0 + p) * FASTBP_NAME(fastbp_of_bits_d)((k1 + 1023u) << 52))
           * FASTBP_NAME(fastbp_of_bits_d)((k2 + 1023u) << 52);
}

FASTBP_TARGET static inline float FASTBP_NAME(fastbp_exp_s)(float x)
{
    float t, kd, r, p;
    uint32_t k, k1, k2;
    x = x > 89.0f ? 89.0f : x;      /* expf(89) = inf */
    x = x < -104.0f ? -104.0f : x;  /* expf(-104) = 0 */
    t = x * (float) FASTBP_LOG2E + FASTBP_MAGIC_S;
    kd = t - FASTBP_MAGIC_S;
    r = (x - kd * FASTBP_LN2_HI_S) - kd * FASTBP_LN2_LO_S;
    p = FASTBP_NAME(fastbp_expm1_poly_s)(r);
    k = FASTBP_NAME(fastbp_bits_s)(t) - FASTBP_NAME(fastbp_bits_s)(FASTBP_MAGIC_S);
    k1 = ((k + 256u) >> 1) - 128u;
    k2 = k - k1;
    return ((1.0f + p) * FASTBP_NAME(fastbp_of_bits_s)((k1 + 127u) << 23))
           * FASTBP_NAME(fastbp_of_bits_s)((k2 + 127u) << 23);
}

FASTBP_TARGET static inline double FASTBP_NAME(fastbp_expm1_d)(double x)
{
    double t, kd, r, p, h;
    uint64_t k;
    x = x > 710.0 ? 710.0 : x;   /* expm1(710) = inf */
    x = x < -40.0 ? -40.0 : x;   /* expm1(-40) rounds to -1 */
    t = x * FASTBP_LOG2E + FASTBP_MAGIC_D;
    kd = t - FASTBP_MAGIC_D;
    r = (x - kd * FASTBP_LN2_HI_D) - kd * FASTBP_LN2_LO_D;
    p = FASTBP_NAME(fastbp_expm1_poly_d)(r);
    k = FASTBP_NAME(fastbp_bits_d)(t) - FASTBP_NAME(fastbp_bits_d)(FASTBP_MAGIC_D);
    h = FASTBP_NAME(fastbp_of_bits_d)((k + 1022u) << 52);   /* 2**(k-1) */
    return kd == 0.0 ? p : 2.0 * (h * p + (h - 0.5));
}

FASTBP_TARGET static inline float FASTBP_NAME(fastbp_expm1_s)(float x)
{
    float t, kd, r, p, h;
    uint32_t k;
    x = x > 89.0f ? 89.0f : x;
    x = x < -20.0f ? -20.0f : x;
    t = x * (float) FASTBP_LOG2E + FASTBP_MAGIC_S;
    kd = t - FASTBP_MAGIC_S;
    r = (x - kd * FASTBP_LN2_HI_S) - kd * FASTBP_LN2_LO_S;
    p = FASTBP_NAME(fastbp_expm1_poly_s)(r);
    k = FASTBP_NAME(fastbp_bits_s)(t) - FASTBP_NAME(fastbp_bits_s)(FASTBP_MAGIC_S);
    h = FASTBP_NAME(fastbp_of_bits_s)((k + 126u) << 23);
    return kd == 0.0f ? p : 2.0f * (h * p + (h - 0.5f));
}

/* log1p(y) for 0 <= y <= 1 (and NaN). */
FASTBP_TARGET static inline double FASTBP_NAME(fastbp_log1p01_d)(double y)
{
    double u = 1.0 + y, c, m, e, s, z, q, s2;
    int big;
    c = (y - (u - 1.0)) / u;
    big = u > FASTBP_SQRT2;
    m = big ? 0.5 * u : u;
    e = big ? FASTBP_LN2 : 0.0;
    s = (m - 1.0) / (m + 1.0);
    z = s * s;
    q = 1.0 / 21.0;
    q = 1.0 / 19.0 + z * q;
    q = 1.0 / 17.0 + z * q;
    q = 1.0 / 15.0 + z * q;
    q = 1.0 / 13.0 + z * q;
    q = 1.0 / 11.0 + z * q;
    q = 1.0 / 9.0 + z * q;
    q = 1.0 / 7.0 + z * q;
    q = 1.0 / 5.0 + z * q;
    q = 1.0 / 3.0 + z * q;
    s2 = s + s;
    return e + ((s2 + s2 * (z * q)) + c);
}

FASTBP_TARGET static inline float FASTBP_NAME(fastbp_log1p01_s)(float y)
{
    float u = 1.0f + y, c, m, e, s, z, q, s2;
    int big;
    c = (y - (u - 1.0f)) / u;
    big = u > (float) FASTBP_SQRT2;
    m = big ? 0.5f * u : u;
    e = big ? (float) FASTBP_LN2 : 0.0f;
    s = (m - 1.0f) / (m + 1.0f);
    z = s * s;
    q = 1.0f / 11.0f;
    q = 1.0f / 9.0f + z * q;
    q = 1.0f / 7.0f + z * q;
    q = 1.0f / 5.0f + z * q;
    q = 1.0f / 3.0f + z * q;
    s2 = s + s;
    return e + ((s2 + s2 * (z * q)) + c);
}

/* The element-wise test loop: x = f(x) in place (FASTBP_MATH_*). */
#define FASTBP_MATH(T, X, name)                                                 \
    FASTBP_TARGET static void FASTBP_NAME(name)(T *restrict x, Py_ssize_t size, \
                                                int which)                      \
    {                                                                           \
        Py_ssize_t i;                                                           \
        if (which == FASTBP_MATH_EXP)                                           \
            for (i = 0; i < size; i++)                                          \
                x[i] = FASTBP_NAME(FASTBP_CAT(fastbp_exp, X))(x[i]);            \
        else if (which == FASTBP_MATH_EXPM1)                                    \
            for (i = 0; i < size; i++)                                          \
                x[i] = FASTBP_NAME(FASTBP_CAT(fastbp_expm1, X))(x[i]);          \
        else if (which == FASTBP_MATH_TANH)                                     \
            for (i = 0; i < size; i++)                                          \
                x[i] = FASTBP_NAME(FASTBP_CAT(fastbp_tanh, X))(x[i]);           \
        else if (which == FASTBP_MATH_LOGISTIC)                                 \
            for (i = 0; i < size; i++)                                          \
                x[i] = (T) 1 / ((T) 1 + FASTBP_NAME(FASTBP_CAT(fastbp_exp, X))(-x[i])); \
        else                                                                    \
            for (i = 0; i < size; i++)                                          \
                x[i] = FASTBP_NAME(FASTBP_CAT(fastbp_log1p01, X))(x[i]);        \
    }

/* The activations: one loop per kind, over a row's units, each unit's
   operations in the order of the scalar form (see _core.pyx). */
#define FASTBP_ACT_LOOP(T, EXPR)                                                \
    for (i = 0; i < n_rows; i++) {                                              \
        T *restrict row = z + i * n_cols;                                       \
        if (pre != NULL) {                                                      \
            T *restrict pr = pre + i * n_cols;                                  \
            for (j = 0; j < n_cols; j++) {                                      \
                const T v = row[j] + b[j];                                      \
                pr[j] = v;                                                      \
                row[j] = (EXPR);                                                \
            }                                                                   \
        } else {                                                                \
            for (j = 0; j < n_cols; j++) {                                      \
                const T v = row[j] + b[j];                                      \
                row[j] = (EXPR);                                                \
            }                                                                   \
        }                                                                       \
    }

/* tanh(softplus(v)) = n / (n + 2), n = e^v (e^v + 2); 1 above v = 20, where
   that rounds to 1 in both precisions. */
#define FASTBP_TANH_SOFTPLUS(T, X, name)                                        \
    FASTBP_TARGET static inline T FASTBP_NAME(name)(T v)                        \
    {                                                                           \
        const T e = FASTBP_NAME(FASTBP_CAT(fastbp_exp, X))(v > 20 ? (T) 20 : v); \
        const T n = e * (e + 2);                                                \
        const T t = n / (n + 2);                                                \
        return v > 20 ? (T) 1 : t;                                              \
    }

FASTBP_TANH_SOFTPLUS(double, d, fastbp_tanh_softplus_d)
FASTBP_TANH_SOFTPLUS(float, s, fastbp_tanh_softplus_s)

/* tanh(x) = e / (e + 2), e = expm1(2|x|), with x's sign; 2|x| is capped at 40,
   where that rounds to 1 in both precisions (tanh(20) = 1 - 8e-18). A zero
   keeps its sign and NaN stays NaN. A few ulp from libm's tanh. */
#define FASTBP_TANH(T, X, name)                                                 \
    FASTBP_TARGET static inline T FASTBP_NAME(name)(T x)                        \
    {                                                                           \
        const T ax2 = 2 * (x < 0 ? -x : x);                                     \
        const T e = FASTBP_NAME(FASTBP_CAT(fastbp_expm1, X))(                   \
            ax2 > 40 ? (T) 40 : ax2);                                           \
        const T t = e / (e + 2);                                                \
        return x == 0 ? x : (x < 0 ? -t : t);                                   \
    }

FASTBP_TANH(double, d, fastbp_tanh_d)
FASTBP_TANH(float, s, fastbp_tanh_s)

/* z = act(z + b) in place, and pre = z + b if pre is not NULL:
   z, pre (n_rows, n_cols), b (n_cols,); param is leaky_relu's slope. */
#define FASTBP_ACT(T, X, name)                                                  \
    FASTBP_TARGET static void FASTBP_NAME(name)(                                \
        T *z, const T *restrict b, Py_ssize_t n_rows, Py_ssize_t n_cols,        \
        int kind, double param, T *pre)                                         \
    {                                                                           \
        Py_ssize_t i, j;                                                        \
        const T slope = (T) param, one = 1;                                     \
        const T c2 = (T) (2 * FASTBP_GELU_C), k = (T) FASTBP_GELU_K;            \
        const T sc = (T) FASTBP_SELU_SCALE, al = (T) FASTBP_SELU_ALPHA;         \
        switch (kind) {                                                         \
        case FASTBP_EW_LEAKY_RELU:                                              \
            FASTBP_ACT_LOOP(T, v > 0 ? v : slope * v)                           \
            break;                                                              \
        case FASTBP_EW_ELU:                                                     \
            FASTBP_ACT_LOOP(T, v > 0 ? v                                        \
                            : FASTBP_NAME(FASTBP_CAT(fastbp_expm1, X))(v))      \
            break;                                                              \
        case FASTBP_EW_SELU:                                                    \
            FASTBP_ACT_LOOP(T, sc * (v > 0 ? v                                  \
                            : al * FASTBP_NAME(FASTBP_CAT(fastbp_expm1, X))(v))) \
            break;                                                              \
        case FASTBP_EW_SOFTPLUS:                                                \
            /* log(1 + exp(v)) = max(v, 0) + log1p(exp(-|v|)) */                \
            FASTBP_ACT_LOOP(T, (v > 0 ? v : 0)                                  \
                + FASTBP_NAME(FASTBP_CAT(fastbp_log1p01, X))(                   \
                    FASTBP_NAME(FASTBP_CAT(fastbp_exp, X))(v > 0 ? -v : v)))    \
            break;                                                              \
        case FASTBP_EW_GELU:                                                    \
            /* 0.5 v (1 + tanh(u)) = v sigmoid(2u) = v / (1 + exp(-2u)) */      \
            FASTBP_ACT_LOOP(T, v / (one                                         \
                + FASTBP_NAME(FASTBP_CAT(fastbp_exp, X))(                       \
                    -(c2 * (v + k * v * v * v)))))                              \
            break;                                                              \
        case FASTBP_EW_SILU:                                                    \
            FASTBP_ACT_LOOP(T, v / (one                                         \
                + FASTBP_NAME(FASTBP_CAT(fastbp_exp, X))(-v)))                  \
            break;                                                              \
        case FASTBP_EW_MISH:                                                    \
            FASTBP_ACT_LOOP(T, v * FASTBP_NAME(FASTBP_CAT(fastbp_tanh_softplus, X))(v)) \
            break;                                                              \
        case FASTBP_EW_TANH:                                                    \
            FASTBP_ACT_LOOP(T, FASTBP_NAME(FASTBP_CAT(fastbp_tanh, X))(v))      \
            break;                                                              \
        case FASTBP_EW_LOGISTIC:                                                \
            /* 1 / (1 + exp(-v)), as scipy.special.expit */                     \
            FASTBP_ACT_LOOP(T, one / (one                                       \
                + FASTBP_NAME(FASTBP_CAT(fastbp_exp, X))(-v)))                  \
            break;                                                              \
        case FASTBP_EW_RELU:                                                    \
            /* a select that keeps NaN, as np.maximum(v, 0): NaN < 0 is false */ \
            FASTBP_ACT_LOOP(T, v < 0 ? (T) 0 : v)                               \
            break;                                                              \
        case FASTBP_EW_IDENTITY:                                                \
            FASTBP_ACT_LOOP(T, v)                                               \
            break;                                                              \
        }                                                                       \
    }

/* delta *= act'(z), written through a = act(z) (leaky_relu, elu, selu,
   softplus), through z = pre and a (gelu, silu), or through z (mish). All
   (size,); a must be act(z), as the forward pass left it (dropout's backward
   pass restores it). */
#define FASTBP_ACT_GRAD(T, X, name)                                             \
    FASTBP_TARGET static void FASTBP_NAME(name)(                                \
        T *restrict delta, const T *restrict a, const T *restrict pre,          \
        Py_ssize_t size, int kind, double param)                                \
    {                                                                           \
        Py_ssize_t i;                                                           \
        const T slope = (T) param, one = 1;                                     \
        const T c2 = (T) (2 * FASTBP_GELU_C);                                   \
        const T k3 = (T) (3 * FASTBP_GELU_K), half = (T) 0.5;                   \
        /* sigmoid(z) and gelu's sigmoid(2u) round to 1/2 below it */           \
        const T tiny = sizeof(T) == 4 ? (T) 1e-9 : (T) 1e-20;                   \
        const T sl = (T) FASTBP_SELU_SCALE;                                     \
        const T sa = (T) (FASTBP_SELU_SCALE * FASTBP_SELU_ALPHA);               \
        switch (kind) {                                                         \
        case FASTBP_EW_RELU:                                                    \
            /* a is never negative; a NaN unit keeps its delta, as in           \
               scikit-learn */                                                  \
            for (i = 0; i < size; i++)                                          \
                delta[i] = a[i] == 0 ? (T) 0 : delta[i];                        \
            break;                                                              \
        case FASTBP_EW_IDENTITY: /* act' = 1 */                                 \
            break;                                                              \
        case FASTBP_EW_TANH: /* tanh' = 1 - a**2 */                             \
            for (i = 0; i < size; i++)                                          \
                delta[i] = delta[i] * (one - a[i] * a[i]);                      \
            break;                                                              \
        case FASTBP_EW_LOGISTIC: /* logistic' = a (1 - a) */                    \
            for (i = 0; i < size; i++)                                          \
                delta[i] = delta[i] * a[i] * (one - a[i]);                      \
            break;                                                              \
        case FASTBP_EW_LEAKY_RELU: /* slope >= 0: a has z's sign */             \
            for (i = 0; i < size; i++)                                          \
                delta[i] = a[i] > 0 ? delta[i] : delta[i] * slope;              \
            break;                                                              \
        case FASTBP_EW_ELU: /* exp(z) = a + 1 for z <= 0 */                     \
            for (i = 0; i < size; i++)                                          \
                delta[i] = a[i] > 0 ? delta[i] : delta[i] * (a[i] + 1);         \
            break;                                                              \
        case FASTBP_EW_SELU:                                                    \
            for (i = 0; i < size; i++)                                          \
                delta[i] = a[i] > 0 ? delta[i] * sl : delta[i] * (a[i] + sa);   \
            break;                                                              \
        case FASTBP_EW_SOFTPLUS:                                                \
            /* sigmoid(z) = 1 - exp(-softplus(z)) = -expm1(-a) */               \
            for (i = 0; i < size; i++)                                          \
                delta[i] = -delta[i]                                            \
                    * FASTBP_NAME(FASTBP_CAT(fastbp_expm1, X))(-a[i]);          \
            break;                                                              \
        case FASTBP_EW_GELU:                                                    \
            /* with s = sigmoid(2u): d/dz [z s] = s + z s (1 - s) 2 u'(z); s is \
               a / z, the forward pass's sigmoid to an ulp or two (no second    \
               exp), and 1/2 where z is too small to divide by (there it is     \
               1/2 to rounding). */                                             \
            for (i = 0; i < size; i++) {                                        \
                const T v = pre[i];                                             \
                const T q = a[i] / v;                                           \
                const T s = (v < tiny && v > -tiny) ? half : q;                 \
                delta[i] = delta[i] * (s + v * s * (one - s) * c2               \
                                       * (one + k3 * v * v));                   \
            }                                                                   \
            break;                                                              \
        case FASTBP_EW_SILU: /* s = sigmoid(z) = a / z, as for gelu */          \
            for (i = 0; i < size; i++) {                                        \
                const T v = pre[i];                                             \
                const T q = a[i] / v;                                           \
                const T s = (v < tiny && v > -tiny) ? half : q;                 \
                delta[i] = delta[i] * (s * (one + v * (one - s)));              \
            }                                                                   \
            break;                                                              \
        case FASTBP_EW_MISH:                                                    \
            /* t = tanh(softplus(z)), s = sigmoid(z) = e / (1 + e), from one    \
               e = exp(min(z, 20)); above 20, t = 1 and s is not used. */       \
            for (i = 0; i < size; i++) {                                        \
                const T v = pre[i];                                             \
                const T e = FASTBP_NAME(FASTBP_CAT(fastbp_exp, X))(v > 20 ? (T) 20 : v); \
                const T n = e * (e + 2);                                        \
                const T q = n / (n + 2), s = e / (one + e);                     \
                const T t = v > 20 ? one : q;                                   \
                delta[i] = delta[i] * (t + v * (one - t * t) * s);              \
            }                                                                   \
            break;                                                              \
        }                                                                       \
    }

/* Inverted dropout on one row of n units, in place: x *= mask / (1 - p);
   a unit is kept when its 32 bits (FASTBP_UNIT_BITS) are >= threshold =
   floor(p 2**32). A select of constants, not a branch. */
#define FASTBP_DROP(T, name)                                                    \
    FASTBP_TARGET static void FASTBP_NAME(name)(                                \
        T *restrict x, Py_ssize_t n, uint32_t lo, uint32_t hi,                  \
        uint32_t threshold, double p)                                           \
    {                                                                           \
        const T scale = (T) (1.0 / (1.0 - p)), zero = 0;                        \
        Py_ssize_t j;                                                           \
        for (j = 0; j < n; j++) {                                               \
            uint32_t bits;                                                      \
            FASTBP_UNIT_BITS(bits, lo, hi, j);                                  \
            x[j] = x[j] * (bits >= threshold ? scale : zero);                   \
        }                                                                       \
    }

/* The backward pass of one row: delta *= mask / (1 - p) with the forward
   pass's mask, and a (the dropped output) back to act(z) = a (1 - p) where
   kept. */
#define FASTBP_DROP_GRAD(T, name)                                               \
    FASTBP_TARGET static void FASTBP_NAME(name)(                                \
        T *restrict delta, T *restrict a, Py_ssize_t n, uint32_t lo,            \
        uint32_t hi, uint32_t threshold, double p)                              \
    {                                                                           \
        const T scale = (T) (1.0 / (1.0 - p)), keep = (T) (1.0 - p);            \
        const T zero = 0, one = 1;                                              \
        Py_ssize_t j;                                                           \
        for (j = 0; j < n; j++) {                                               \
            uint32_t bits;                                                      \
            int kept;                                                           \
            FASTBP_UNIT_BITS(bits, lo, hi, j);                                  \
            kept = bits >= threshold;                                           \
            delta[j] = delta[j] * (kept ? scale : zero);                        \
            a[j] = a[j] * (kept ? keep : one);                                  \
        }                                                                       \
    }

FASTBP_MATH(double, d, fastbp_math_d)
FASTBP_MATH(float, s, fastbp_math_s)
FASTBP_ACT(double, d, fastbp_act_d)
FASTBP_ACT(float, s, fastbp_act_s)
FASTBP_ACT_GRAD(double, d, fastbp_act_grad_d)
FASTBP_ACT_GRAD(float, s, fastbp_act_grad_s)
FASTBP_DROP(double, fastbp_drop_d)
FASTBP_DROP(float, fastbp_drop_s)
FASTBP_DROP_GRAD(double, fastbp_drop_grad_d)
FASTBP_DROP_GRAD(float, fastbp_drop_grad_s)

FASTBP_GEMM(double, d, fastbp_gemm_d)
FASTBP_GEMM(float, s, fastbp_gemm_s)
FASTBP_ADAM(double, sqrt, fastbp_adam_d)
FASTBP_ADAM(float, sqrtf, fastbp_adam_s)
FASTBP_SGD(double, fastbp_sgd_d)
FASTBP_SGD(float, fastbp_sgd_s)
FASTBP_SUM_SQUARES(double, fastbp_sumsq_d)
FASTBP_SUM_SQUARES(float, fastbp_sumsq_s)
FASTBP_COLUMN_SUMS(double, fastbp_colsum_d)
FASTBP_COLUMN_SUMS(float, fastbp_colsum_s)
FASTBP_OUTER(double, fastbp_outer_d)
FASTBP_OUTER(float, fastbp_outer_s)
FASTBP_TRANSPOSE(double, fastbp_transpose_d)
FASTBP_TRANSPOSE(float, fastbp_transpose_s)

#undef FASTBP_ADAM
#undef FASTBP_ADAM_LOOP
#undef FASTBP_SGD
#undef FASTBP_SUM_SQUARES
#undef FASTBP_COLUMN_SUMS
#undef FASTBP_OUTER
#undef FASTBP_TRANSPOSE
#undef FASTBP_GEMM_RB
#undef FASTBP_GEMM_ROWS
#undef FASTBP_GEMM_R1
#undef FASTBP_DOT
#undef FASTBP_DOWN_ROWS
#undef FASTBP_DOT_LANES
#undef FASTBP_GEMM
#undef FASTBP_GEMM_BLOCKS
#undef FASTBP_GEMM_TAIL
#undef FASTBP_FMA
#undef FASTBP_VFMA
#undef FASTBP_VFMA_VV
#undef FASTBP_VFMA_P
#undef FASTBP_VFMA_FNS
#undef FASTBP_MATH
#undef FASTBP_ACT_LOOP
#undef FASTBP_TANH_SOFTPLUS
#undef FASTBP_ACT
#undef FASTBP_ACT_GRAD
#undef FASTBP_DROP
#undef FASTBP_DROP_GRAD
#undef FASTBP_NAME
#undef FASTBP_CAT
#undef FASTBP_CAT_
