# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""The brute-force table builders maskdec used before maskdec.tables, verbatim from
src/_core/kernels.pyx at 8d769ee (ColourTable.rgb_lut / yuv_lut called them). Kept here
only so that benchmarks/bench_tables.py can measure the new builders against them in one
run; compiled on the fly when Cython is importable. Not part of the package.
"""
from libc.math cimport ceil, sqrt
from libc.stdint cimport int64_t, uint8_t, uint16_t, uint32_t

ctypedef fused label_t:
    uint8_t
    uint16_t


def build_rgb_lut(const uint8_t[:, ::1] colours, const label_t[::1] ids, int64_t radius2,
                  label_t[::1] lut, uint32_t[::1] best):
    """Paint each colour's ball of squared radius `radius2` into the 2**24-entry `lut`.

    `best` holds the squared distance of the colour already painted (start it at
    0xFFFFFFFF and `lut` at the ignore index). A cell goes to the nearest
    colour; on a tie the earlier colour keeps it.
    """
    cdef Py_ssize_t k, n = colours.shape[0]
    cdef int r, g, b, r0, r1, g0, g1, b0, b1, cr, cg, cb, reach
    cdef int64_t dr2, dg2, d
    cdef uint32_t key
    reach = 0
    while <int64_t>(reach + 1) * (reach + 1) <= radius2 and reach < 255:
        reach += 1
    with nogil:
        for k in range(n):
            cr = colours[k, 0]
            cg = colours[k, 1]
            cb = colours[k, 2]
            r0 = cr - reach if cr > reach else 0
            r1 = cr + reach if cr + reach < 255 else 255
            g0 = cg - reach if cg > reach else 0
            g1 = cg + reach if cg + reach < 255 else 255
            b0 = cb - reach if cb > reach else 0
            b1 = cb + reach if cb + reach < 255 else 255
            for r in range(r0, r1 + 1):
                dr2 = (r - cr) * (r - cr)
                if dr2 > radius2:
                    continue
                for g in range(g0, g1 + 1):
                    dg2 = dr2 + (g - cg) * (g - cg)
                    if dg2 > radius2:
                        continue
                    for b in range(b0, b1 + 1):
                        d = dg2 + (b - cb) * (b - cb)
                        if d <= radius2:
                            key = (<uint32_t>r << 16) | (<uint32_t>g << 8) | <uint32_t>b
                            if d < best[key]:
                                best[key] = <uint32_t>d
                                lut[key] = ids[k]


def build_yuv_lut(const double[:, ::1] colours, const label_t[::1] ids, double radius2,
                  const double[::1] luma, const double[::1] chroma, double kr, double kb,
                  label_t[::1] lut, uint8_t[::1] dist):
    """Fill the chroma-major table (U << 16 | V << 8 | Y) with the id of the declared
    colour nearest to each YUV triple's exact RGB value, within sqrt(radius2).

    `luma[y]` and `chroma[c]` are the normalised Y' and Cb/Cr of each code value;
    RGB is computed in floating point (0..255, clipped) and never rounded, so a
    triple between two colours goes to the truly nearer one. Ties keep the
    earlier colour; cells beyond the radius keep what `lut` holds (ignore).
    `dist` gets the distance to the nearest colour, rounded up, at most 255.
    """
    cdef Py_ssize_t n = colours.shape[0], k, best_k
    cdef int u, v, y
    cdef double r, g, b, d, best, kg = 1.0 - kr - kb
    cdef double cr_r, cb_b, nearest
    with nogil:
        for u in range(256):
            cb_b = 2.0 * (1.0 - kb) * chroma[u]
            for v in range(256):
                cr_r = 2.0 * (1.0 - kr) * chroma[v]
                for y in range(256):
                    r = luma[y] + cr_r
                    b = luma[y] + cb_b
                    g = (luma[y] - kr * r - kb * b) / kg
                    r = 255.0 * (0.0 if r < 0.0 else (1.0 if r > 1.0 else r))
                    g = 255.0 * (0.0 if g < 0.0 else (1.0 if g > 1.0 else g))
                    b = 255.0 * (0.0 if b < 0.0 else (1.0 if b > 1.0 else b))
                    best = radius2
                    best_k = -1
                    nearest = 255.0 * 255.0
                    for k in range(n):
                        d = ((r - colours[k, 0]) * (r - colours[k, 0]) + (g - colours[k, 1]) * (g - colours[k, 1])
                             + (b - colours[k, 2]) * (b - colours[k, 2]))
                        if d < nearest:
                            nearest = d
                        if d < best or (d == best and best_k < 0):
                            best = d
                            best_k = k
                    if best_k >= 0:
                        lut[(u << 16) | (v << 8) | y] = ids[best_k]
                    dist[(u << 16) | (v << 8) | y] = <uint8_t>ceil(sqrt(nearest))
