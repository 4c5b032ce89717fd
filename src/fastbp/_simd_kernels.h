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

FASTBP_ADAM(double, sqrt, fastbp_adam_d)
FASTBP_ADAM(float, sqrtf, fastbp_adam_s)
FASTBP_SGD(double, fastbp_sgd_d)
FASTBP_SGD(float, fastbp_sgd_s)
FASTBP_SUM_SQUARES(double, fastbp_sumsq_d)
FASTBP_SUM_SQUARES(float, fastbp_sumsq_s)

#undef FASTBP_ADAM
#undef FASTBP_SGD
#undef FASTBP_SUM_SQUARES
#undef FASTBP_NAME
#undef FASTBP_CAT
#undef FASTBP_CAT_
