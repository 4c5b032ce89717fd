/* Authors: The fastbp developers
 * SPDX-License-Identifier: BSD-3-Clause
 *
 * The optimizer and reduction loops, instantiated once per instruction set by
 * _simd.h: it defines FASTBP_SUFFIX (the name suffix) and FASTBP_TARGET (a
 * function attribute, or nothing) and includes this file once per target.
 *
 * Every loop does, element by element, exactly the operations of its scalar
 * form in the order written: IEEE addition, multiplication, division and
 * square root are correctly rounded at every vector width, and the build
 * turns off floating-point contraction (no fused multiply-add), so each
 * target gives bitwise the same results and only the speed differs.
 */

#define FASTBP_CAT_(a, b) a##_##b
#define FASTBP_CAT(a, b) FASTBP_CAT_(a, b)
#define FASTBP_NAME(name) FASTBP_CAT(name, FASTBP_SUFFIX)

/* Adam: g = (grad + alpha*param) / scale; m = b1 m + (1-b1) g;
   v = b2 v + (1-b2) g*g; param += -lr m / (sqrt(v) + eps). */
#define FASTBP_ADAM(T, SQRT, name)                                              \
    FASTBP_TARGET static void FASTBP_NAME(name)(                                \
        T *restrict param, const T *restrict grad, T *restrict m,             \
        T *restrict v, Py_ssize_t size, const fastbp_step *step)                \
    {                                                                           \
        const T a = (T) step->alpha, inv = (T) step->scale;                     \
        const T b1 = (T) step->beta_1, b2 = (T) step->beta_2;                   \
        const T c1 = (T) (1.0 - step->beta_1), c2 = (T) (1.0 - step->beta_2);   \
        const T neg_lr = (T) (-step->lr), eps = (T) step->epsilon;              \
        double r;                                                               \
        Py_ssize_t k;                                                           \
        if (fastbp_exact_recip(step->scale, sizeof(T) == sizeof(float), &r)) {  \
            const T rinv = (T) r; /* x / inv == x * rinv, bitwise */            \
            for (k = 0; k < size; k++) {                                        \
                T g = (grad[k] + a * param[k]) * rinv;                          \
                T mk = b1 * m[k] + c1 * g;                                      \
                T vk = b2 * v[k] + c2 * (g * g);                                \
                m[k] = mk;                                                      \
                v[k] = vk;                                                      \
                param[k] = param[k] + (neg_lr * mk) / (SQRT(vk) + eps);         \
            }                                                                   \
            return;                                                             \
        }                                                                       \
        for (k = 0; k < size; k++) {                                            \
            T g = (grad[k] + a * param[k]) / inv;                               \
            T mk = b1 * m[k] + c1 * g;                                          \
            T vk = b2 * v[k] + c2 * (g * g);                                    \
            m[k] = mk;                                                          \
            v[k] = vk;                                                          \
            param[k] = param[k] + (neg_lr * mk) / (SQRT(vk) + eps);             \
        }                                                                       \
    }

/* SGD with momentum mu and rate lr: v = mu v - lr g; param += v, or with
   Nesterov's momentum param += mu v - lr g. */
#define FASTBP_SGD(T, name)                                                     \
    FASTBP_TARGET static void FASTBP_NAME(name)(                                \
        T *restrict param, const T *restrict grad, T *restrict velocity,      \
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
    FASTBP_TARGET static double FASTBP_NAME(name)(const T *restrict x,        \
                                                  Py_ssize_t size)             \
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
    FASTBP_TARGET static double FASTBP_NAME(name)(const T *restrict x,        \
                                                  Py_ssize_t size)             \
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

/* Small matrix products, c[m, n] = op(a)[m, k] @ b[k, n], row-major, with
   op(a)[i, p] = a[i * ars + p * acs] (a or its transpose by the strides).
   Each c[i, j] is 0 + op(a)[i, 0] b[0, j] + op(a)[i, 1] b[1, j] + ..., in
   that order. Blocks of 4 rows (then single rows) by vectors of columns
   accumulate in registers, with GCC/Clang vector types: two vectors of the
   target's width (FASTBP_VBYTES), then one, then 16-byte vectors for the
   columns left over. Vector arithmetic is lane by lane, so the order of each
   sum is the same at every width. The columns left after that, and every
   column with other compilers, take the same sums on scalars. A product
   with a single column and op(a) read down contiguous rows (the gradient of
   a single output unit) runs its vectors down the rows instead. */
#if defined(__GNUC__)
/* Rows [i, i + 4) by NV vectors of type VT (LEN lanes each) from column j0. */
#define FASTBP_GEMM_R4(T, VT, LEN, NV)                                          \
    for (; j0 + (NV) * (LEN) <= n; j0 += (NV) * (LEN)) {                        \
        VT x[4][NV], u[NV];                                                     \
        Py_ssize_t q, v;                                                        \
        for (q = 0; q < 4; q++)                                                 \
            for (v = 0; v < (NV); v++)                                          \
                x[q][v] = (VT) {0};                                             \
        for (p = 0; p < k; p++) {                                               \
            const T *bp = b + p * ldb + j0;                                     \
            for (v = 0; v < (NV); v++)                                          \
                memcpy(&u[v], bp + v * (LEN), sizeof(VT));                      \
            for (q = 0; q < 4; q++) {                                           \
                const T aq = a[(i + q) * ars + p * acs];                        \
                for (v = 0; v < (NV); v++)                                      \
                    x[q][v] = x[q][v] + aq * u[v];                              \
            }                                                                   \
        }                                                                       \
        for (q = 0; q < 4; q++)                                                 \
            for (v = 0; v < (NV); v++)                                          \
                memcpy(c + (i + q) * ldc + j0 + v * (LEN), &x[q][v], sizeof(VT)); \
    }

/* Row i by one vector of type VT (LEN lanes) from column j0. */
#define FASTBP_GEMM_R1(T, VT, LEN)                                              \
    for (; j0 + (LEN) <= n; j0 += (LEN)) {                                      \
        VT x0 = {0}, u;                                                         \
        for (p = 0; p < k; p++) {                                               \
            memcpy(&u, b + p * ldb + j0, sizeof(VT));                           \
            x0 = x0 + a[i * ars + p * acs] * u;                                 \
        }                                                                       \
        memcpy(c + i * ldc + j0, &x0, sizeof(VT));                              \
    }

/* Dot products of rows i..i+3 of a (contiguous) with the column b
   (contiguous): each is split into FASTBP_DOT_LANES(T) partial sums, lane t
   taking the terms p = t mod lanes in order, which one 64-byte vector holds
   at every target (GCC splits it into the target's registers; the arithmetic
   stays lane by lane). The lanes are then added pairwise in a fixed tree,
   and the terms past the last full vector one by one after it. */
#define FASTBP_DOT_LANES(T) ((Py_ssize_t) (64 / sizeof(T)))
#define FASTBP_DOT4(T, i0)                                                      \
    {                                                                           \
        typedef T V64 __attribute__((vector_size(64)));                         \
        const Py_ssize_t P = FASTBP_DOT_LANES(T), kend = k - k % P;             \
        V64 acc[4], u, w;                                                       \
        T lanes[64 / sizeof(T)];                                                \
        Py_ssize_t q, h, t;                                                     \
        for (q = 0; q < 4; q++)                                                 \
            acc[q] = (V64) {0};                                                 \
        for (p = 0; p < kend; p += P) {                                         \
            memcpy(&w, b + p, sizeof(V64));                                     \
            for (q = 0; q < 4; q++) {                                           \
                memcpy(&u, a + ((i0) + q) * ars + p, sizeof(V64));              \
                acc[q] = acc[q] + u * w;                                        \
            }                                                                   \
        }                                                                       \
        for (q = 0; q < 4; q++) {                                               \
            T sum;                                                              \
            memcpy(lanes, &acc[q], sizeof(V64));                                \
            for (h = P / 2; h >= 1; h /= 2)                                     \
                for (t = 0; t < h; t++)                                         \
                    lanes[t] = lanes[2 * t] + lanes[2 * t + 1];                 \
            sum = lanes[0];                                                     \
            for (p = kend; p < k; p++)                                          \
                sum = sum + a[((i0) + q) * ars + p] * b[p];                     \
            c[((i0) + q) * ldc] = sum;                                          \
        }                                                                       \
    }

#define FASTBP_GEMM_BLOCKS(T)                                                   \
    typedef T V __attribute__((vector_size(FASTBP_VBYTES)));                   \
    typedef T V16 __attribute__((vector_size(16)));                             \
    const Py_ssize_t L = FASTBP_VBYTES / sizeof(T), L16 = 16 / sizeof(T);       \
    if (n == 1 && ars == 1) {                                                   \
        /* c[i] = sum_p a[i + p acs] b[p ldb]: vectors down the rows. */        \
        for (; i + 2 * L <= m; i += 2 * L) {                                    \
            V x0 = {0}, x1 = {0}, u0, u1;                                       \
            for (p = 0; p < k; p++) {                                           \
                const T bp = b[p * ldb];                                        \
                memcpy(&u0, a + i + p * acs, sizeof(V));                        \
                memcpy(&u1, a + i + L + p * acs, sizeof(V));                    \
                x0 = x0 + u0 * bp;                                              \
                x1 = x1 + u1 * bp;                                              \
            }                                                                   \
            if (ldc == 1) {                                                     \
                memcpy(c + i, &x0, sizeof(V));                                  \
                memcpy(c + i + L, &x1, sizeof(V));                              \
            } else {                                                            \
                Py_ssize_t t;                                                   \
                for (t = 0; t < L; t++) {                                       \
                    c[(i + t) * ldc] = x0[t];                                   \
                    c[(i + L + t) * ldc] = x1[t];                               \
                }                                                               \
            }                                                                   \
        }                                                                       \
        for (; i + L16 <= m; i += L16) {                                        \
            V16 x0 = {0}, u0;                                                   \
            Py_ssize_t t;                                                       \
            for (p = 0; p < k; p++) {                                           \
                memcpy(&u0, a + i + p * acs, sizeof(V16));                      \
                x0 = x0 + u0 * b[p * ldb];                                      \
            }                                                                   \
            for (t = 0; t < L16; t++)                                           \
                c[(i + t) * ldc] = x0[t];                                       \
        }                                                                       \
    }                                                                           \
    if (n == 1 && acs == 1 && ldb == 1 && k >= FASTBP_DOT_LANES(T)) {           \
        /* A single column over contiguous rows (the output unit's forward    \
           product): dot products, FASTBP_DOT_LANES(T) partial sums each.   */  \
        for (; i + 4 <= m; i += 4) {                                            \
            FASTBP_DOT4(T, i)                                                   \
        }                                                                       \
    }                                                                           \
    if (n == 1) {                                                               \
        /* A single column (the output unit's forward product): eight rows   \
           at a time, as eight independent sums. */                             \
        for (; i + 8 <= m; i += 8) {                                            \
            T s[8] = {0, 0, 0, 0, 0, 0, 0, 0};                                  \
            Py_ssize_t q;                                                       \
            for (p = 0; p < k; p++) {                                           \
                const T bp = b[p * ldb];                                        \
                for (q = 0; q < 8; q++)                                         \
                    s[q] = s[q] + a[(i + q) * ars + p * acs] * bp;              \
            }                                                                   \
            for (q = 0; q < 8; q++)                                             \
                c[(i + q) * ldc] = s[q];                                        \
        }                                                                       \
    }                                                                           \
    for (; i + 4 <= m; i += 4) {                                                \
        j0 = 0;                                                                 \
        FASTBP_GEMM_R4(T, V, L, 2)                                              \
        FASTBP_GEMM_R4(T, V, L, 1)                                              \
        if (L16 < L) {                                                          \
            FASTBP_GEMM_R4(T, V16, L16, 1)                                      \
        }                                                                       \
        FASTBP_GEMM_TAIL(T, i, 4, j0)                                           \
    }                                                                           \
    for (; i < m; i++) {                                                        \
        j0 = 0;                                                                 \
        FASTBP_GEMM_R1(T, V, L)                                                 \
        if (L16 < L) {                                                          \
            FASTBP_GEMM_R1(T, V16, L16)                                         \
        }                                                                       \
        FASTBP_GEMM_TAIL(T, i, 1, j0)                                           \
    }
#else
#define FASTBP_GEMM_BLOCKS(T)
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
                    s0 = s0 + a[q * ars + p * acs] * bj;                        \
                    s1 = s1 + a[(q + 1) * ars + p * acs] * bj;                  \
                    s2 = s2 + a[(q + 2) * ars + p * acs] * bj;                  \
                    s3 = s3 + a[(q + 3) * ars + p * acs] * bj;                  \
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
                        acc = acc + a[t * ars + p * acs] * b[p * ldb + j];      \
                    c[t * ldc + j] = acc;                                       \
                }                                                               \
            }                                                                   \
        }                                                                       \
    }

#define FASTBP_GEMM(T, name)                                                    \
    FASTBP_TARGET static void FASTBP_NAME(name)(                                \
        Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const T *restrict a,          \
        Py_ssize_t ars, Py_ssize_t acs, const T *restrict b, Py_ssize_t ldb,    \
        T *restrict c, Py_ssize_t ldc)                                          \
    {                                                                           \
        Py_ssize_t i = 0, j0 = 0, j, p, r;                                      \
        FASTBP_GEMM_BLOCKS(T)                                                   \
        FASTBP_GEMM_TAIL(T, i, m - i, 0)                                        \
    }

FASTBP_GEMM(double, fastbp_gemm_d)
FASTBP_GEMM(float, fastbp_gemm_s)
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

#undef FASTBP_ADAM
#undef FASTBP_SGD
#undef FASTBP_SUM_SQUARES
#undef FASTBP_COLUMN_SUMS
#undef FASTBP_OUTER
#undef FASTBP_GEMM_R4
#undef FASTBP_GEMM_R1
#undef FASTBP_DOT4
#undef FASTBP_DOT_LANES
#undef FASTBP_GEMM
#undef FASTBP_GEMM_BLOCKS
#undef FASTBP_GEMM_TAIL
#undef FASTBP_NAME
#undef FASTBP_CAT
#undef FASTBP_CAT_
