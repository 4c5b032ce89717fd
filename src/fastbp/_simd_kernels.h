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
        Py_ssize_t k;                                                           \
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
        Py_ssize_t k;                                                           \
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

/* sum(x**2) in double with four running sums, combined as (s0+s1)+(s2+s3). */
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

/* Small matrix products, c[m, n] = op(a)[m, k] @ b[k, n], row-major, with
   op(a)[i, p] = a[i * ars + p * acs] (a or its transpose by the strides).
   Each c[i, j] is 0 + op(a)[i, 0] b[0, j] + op(a)[i, 1] b[1, j] + ..., in
   that order. Blocks of 4 rows (then single rows) by two vectors of columns
   accumulate in registers, with GCC/Clang vector types of the target's width
   (FASTBP_VBYTES); vector arithmetic is lane by lane, so the order of each
   sum is the same at every width. Columns left over, and every column with
   other compilers, take the same sums on scalars. */
#if defined(__GNUC__)
#define FASTBP_GEMM_BLOCKS(T)                                                   \
    typedef T V __attribute__((vector_size(FASTBP_VBYTES)));                   \
    const Py_ssize_t L = FASTBP_VBYTES / sizeof(T), W = 2 * L;                  \
    for (; i + 4 <= m; i += 4) {                                                \
        for (j0 = 0; j0 + W <= n; j0 += W) {                                    \
            V x0 = {0}, x1 = {0}, x2 = {0}, x3 = {0};                            \
            V y0 = {0}, y1 = {0}, y2 = {0}, y3 = {0}, u, w;                      \
            for (p = 0; p < k; p++) {                                           \
                const T *bp = b + p * ldb + j0;                                 \
                const T a0 = a[i * ars + p * acs];                              \
                const T a1 = a[(i + 1) * ars + p * acs];                        \
                const T a2 = a[(i + 2) * ars + p * acs];                        \
                const T a3 = a[(i + 3) * ars + p * acs];                        \
                memcpy(&u, bp, sizeof(V));                                      \
                memcpy(&w, bp + L, sizeof(V));                                  \
                x0 = x0 + a0 * u; y0 = y0 + a0 * w;                             \
                x1 = x1 + a1 * u; y1 = y1 + a1 * w;                             \
                x2 = x2 + a2 * u; y2 = y2 + a2 * w;                             \
                x3 = x3 + a3 * u; y3 = y3 + a3 * w;                             \
            }                                                                   \
            memcpy(c + i * ldc + j0, &x0, sizeof(V));                           \
            memcpy(c + i * ldc + j0 + L, &y0, sizeof(V));                       \
            memcpy(c + (i + 1) * ldc + j0, &x1, sizeof(V));                     \
            memcpy(c + (i + 1) * ldc + j0 + L, &y1, sizeof(V));                 \
            memcpy(c + (i + 2) * ldc + j0, &x2, sizeof(V));                     \
            memcpy(c + (i + 2) * ldc + j0 + L, &y2, sizeof(V));                 \
            memcpy(c + (i + 3) * ldc + j0, &x3, sizeof(V));                     \
            memcpy(c + (i + 3) * ldc + j0 + L, &y3, sizeof(V));                 \
        }                                                                       \
        FASTBP_GEMM_TAIL(T, i, 4, j0)                                           \
    }                                                                           \
    for (; i < m; i++) {                                                        \
        for (j0 = 0; j0 + L <= n; j0 += L) {                                    \
            V x0 = {0}, u;                                                      \
            for (p = 0; p < k; p++) {                                           \
                memcpy(&u, b + p * ldb + j0, sizeof(V));                        \
                x0 = x0 + a[i * ars + p * acs] * u;                             \
            }                                                                   \
            memcpy(c + i * ldc + j0, &x0, sizeof(V));                           \
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

#undef FASTBP_ADAM
#undef FASTBP_SGD
#undef FASTBP_SUM_SQUARES
#undef FASTBP_GEMM
#undef FASTBP_GEMM_BLOCKS
#undef FASTBP_GEMM_TAIL
#undef FASTBP_NAME
#undef FASTBP_CAT
#undef FASTBP_CAT_
