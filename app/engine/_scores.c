/* The scores of a logistic-regression model, z[i, k] = sum_j d[i, j] W[k, j] + b[k], with
 * d = (x - mean) / scale, summed left to right: ((0 + d0 w0) + d1 w1 + ...) + b.
 *
 * One fixed order of IEEE operations per row, so a row's score has the same bits alone or in any
 * batch, on any CPU (a BLAS product chooses its summation order and fused multiply-adds by shape
 * and CPU). Built with -ffp-contract=off so that the compiler does not fuse a product and a sum
 * either (setup.py). Arrays come in through the buffer protocol: no NumPy headers, no NumPy ABI.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

/* From this many multiply-adds on, the loop runs without the GIL. */
#define NOGIL_WORK 65536

static int
is_float64(const char *format)
{
    if (format == NULL) {
        return 0;
    }
    if (format[0] == '@' || format[0] == '=' ||
        (format[0] == '<' && PY_LITTLE_ENDIAN) || (format[0] == '>' && PY_BIG_ENDIAN)) {
        format++;
    }
    return strcmp(format, "d") == 0;
}

/* An aligned, C-contiguous float64 buffer of `ndim` dimensions, or -1 with an exception set. */
static int
get_array(PyObject *obj, Py_buffer *view, int ndim, int writable, const char *name)
{
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, view, flags) < 0) {
        if (!PyErr_ExceptionMatches(PyExc_MemoryError)) {
            PyErr_Format(PyExc_TypeError, "%s: expected a C-contiguous%s float64 array", name,
                         writable ? " writable" : "");
        }
        return -1;
    }
    if (view->ndim != ndim || view->itemsize != 8 || !is_float64(view->format)) {
        PyErr_Format(PyExc_TypeError, "%s: expected a %d-dimensional float64 array", name, ndim);
        PyBuffer_Release(view);
        return -1;
    }
    if ((uintptr_t)view->buf % _Alignof(double) != 0) {
        PyErr_Format(PyExc_TypeError, "%s: expected an aligned float64 array", name);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

/* Whether two buffers share a byte. */
static int
overlap(const Py_buffer *a, const Py_buffer *b)
{
    uintptr_t a0 = (uintptr_t)a->buf, b0 = (uintptr_t)b->buf;
    return a->len > 0 && b->len > 0 && a0 < b0 + (uintptr_t)b->len &&
           b0 < a0 + (uintptr_t)a->len;
}

/* out[i, k] for every row; the first row with a score that is not finite, or -1. */
static Py_ssize_t
score_rows(const double *X, const double *mean, const double *scale, const double *W,
              const double *b, double *out, double *d, Py_ssize_t n, Py_ssize_t p, Py_ssize_t K)
{
    Py_ssize_t bad = -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        const double *row = X + i * p;
        if (mean != NULL) {
            for (Py_ssize_t j = 0; j < p; j++) {
                d[j] = (row[j] - mean[j]) / scale[j];
            }
            row = d;
        }
        for (Py_ssize_t k = 0; k < K; k++) {
            const double *w = W + k * p;
            double z = 0.0;
            for (Py_ssize_t j = 0; j < p; j++) {
                z += row[j] * w[j];
            }
            z += b[k];
            out[i * K + k] = z;
            if (bad < 0 && !isfinite(z)) {
                bad = i;
            }
        }
    }
    return bad;
}

PyDoc_STRVAR(scores_doc,
"scores(X, mean, scale, W, b, out) -> int\n"
"\n"
"Write z[i, k] = sum_j ((X[i, j] - mean[j]) / scale[j]) W[k, j] + b[k], summed left to right,\n"
"into out, and return the first row with a score that is not finite (-1: none).\n"
"\n"
"X: (n, p); mean, scale: (p,), or both None for no standardisation; W: (K, p); b: (K,);\n"
"out: (n, K), writable, sharing no memory with the inputs. All aligned, C-contiguous float64.");

static PyObject *
scores(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 6) {
        PyErr_Format(PyExc_TypeError, "scores() takes 6 arguments (%zd given)", nargs);
        return NULL;
    }
    if ((args[1] == Py_None) != (args[2] == Py_None)) {
        PyErr_SetString(PyExc_TypeError, "mean and scale: both arrays or both None");
        return NULL;
    }
    int standardise = args[1] != Py_None;
    Py_buffer X, mean, scale, W, b, out;
    int got = 0; /* how many of X, W, b, out, mean, scale are held */
    PyObject *result = NULL;
    double *d = NULL;
    Py_ssize_t n, p, K, bad;
    const double *m = NULL, *s = NULL;

    if (get_array(args[0], &X, 2, 0, "X") < 0) goto done;
    got = 1;
    if (get_array(args[3], &W, 2, 0, "W") < 0) goto done;
    got = 2;
    if (get_array(args[4], &b, 1, 0, "b") < 0) goto done;
    got = 3;
    if (get_array(args[5], &out, 2, 1, "out") < 0) goto done;
    got = 4;
    if (standardise) {
        if (get_array(args[1], &mean, 1, 0, "mean") < 0) goto done;
        got = 5;
        if (get_array(args[2], &scale, 1, 0, "scale") < 0) goto done;
        got = 6;
        m = mean.buf;
        s = scale.buf;
    }
    n = X.shape[0];
    p = X.shape[1];
    K = W.shape[0];
    if (W.shape[1] != p || b.shape[0] != K || out.shape[0] != n || out.shape[1] != K ||
        (standardise && (mean.shape[0] != p || scale.shape[0] != p))) {
        PyErr_SetString(PyExc_ValueError,
                        "shapes: X (n, p), mean and scale (p,), W (K, p), b (K,), out (n, K)");
        goto done;
    }
    if (overlap(&out, &X) || overlap(&out, &W) || overlap(&out, &b) ||
        (standardise && (overlap(&out, &mean) || overlap(&out, &scale)))) {
        PyErr_SetString(PyExc_ValueError, "out: shares memory with an input");
        goto done;
    }
    if (standardise && p > 0) {
        d = PyMem_RawMalloc((size_t)p * sizeof(double));
        if (d == NULL) {
            PyErr_NoMemory();
            goto done;
        }
    }
    if (n * p * K >= NOGIL_WORK) {
        Py_BEGIN_ALLOW_THREADS
        bad = score_rows(X.buf, m, s, W.buf, b.buf, out.buf, d, n, p, K);
        Py_END_ALLOW_THREADS
    }
    else {
        bad = score_rows(X.buf, m, s, W.buf, b.buf, out.buf, d, n, p, K);
    }
    result = PyLong_FromSsize_t(bad);

done:
    PyMem_RawFree(d);
    if (got >= 6) PyBuffer_Release(&scale);
    if (got >= 5) PyBuffer_Release(&mean);
    if (got >= 4) PyBuffer_Release(&out);
    if (got >= 3) PyBuffer_Release(&b);
    if (got >= 2) PyBuffer_Release(&W);
    if (got >= 1) PyBuffer_Release(&X);
    return result;
}

static PyMethodDef methods[] = {
    {"scores", (PyCFunction)(void (*)(void))scores, METH_FASTCALL, scores_doc},
    {NULL, NULL, 0, NULL},
};

static PyModuleDef_Slot slots[] = {
#ifdef Py_mod_gil
    {Py_mod_gil, Py_MOD_GIL_NOT_USED}, /* no state: safe without the GIL (free-threaded builds) */
#endif
    {0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "app.engine._scores",
    .m_doc = "Batch-invariant scores of a linear model (see scores.__doc__).",
    .m_size = 0,
    .m_methods = methods,
    .m_slots = slots,
};

PyMODINIT_FUNC
PyInit__scores(void)
{
    return PyModuleDef_Init(&module);
}
