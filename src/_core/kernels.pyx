# cython: language_level=3
"""Pixel loops of maskdec. Callers validate shapes, dtypes and allocate `out`.

Every function here only loops; it releases the GIL and accepts strided,
read-only input.
"""
from libc.math cimport ceil, sqrt
from libc.string cimport memchr, memset
from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t, uint32_t

ctypedef fused label_t:
    uint8_t
    uint16_t

ctypedef fused gray_t:
    uint8_t
    uint16_t


def map_rgb(const uint8_t[:, :, :] image, const label_t[::1] lut, label_t[:, :] out,
            const uint8_t[::1] exact=None, int64_t[::1] counts=None, int ignore=0):
    """out[i, j] = lut[r << 16 | g << 8 | b] for the pixel (r, g, b) at image[i, j].

    Per-sample statistics in the same pass, with `exact` and `counts`: counts[0] += the
    pixels whose key has exact[key] == 1, counts[1] += the pixels labelled `ignore`."""
    cdef Py_ssize_t h = image.shape[0], w = image.shape[1], i, j
    cdef Py_ssize_t sj = image.strides[1], sc = image.strides[2]
    cdef const uint8_t* row
    cdef uint32_t key
    cdef bint stats = exact is not None and counts is not None
    cdef const uint8_t* ex = &exact[0] if stats else NULL
    cdef int64_t n = 0, n_ignore = 0
    cdef label_t a, mark = <label_t>ignore
    with nogil:
        for i in range(h):
            row = &image[i, 0, 0]
            if sj == 3 and sc == 1:
                for j in range(w):
                    key = (<uint32_t>row[3 * j] << 16) | (<uint32_t>row[3 * j + 1] << 8) | row[3 * j + 2]
                    a = lut[key]
                    out[i, j] = a
                    if stats:
                        n += ex[key]
                        n_ignore += a == mark
            else:
                for j in range(w):
                    key = ((<uint32_t>row[j * sj] << 16) | (<uint32_t>row[j * sj + sc] << 8)
                           | row[j * sj + 2 * sc])
                    a = lut[key]
                    out[i, j] = a
                    if stats:
                        n += ex[key]
                        n_ignore += a == mark
    if stats:
        counts[0] += n
        counts[1] += n_ignore


def map_gray(const gray_t[:, :] image, const label_t[::1] lut, label_t[:, :] out,
             const uint8_t[::1] exact=None, int64_t[::1] counts=None, int ignore=0):
    """out[i, j] = lut[image[i, j]] for 8- or 16-bit single-channel masks (`exact`, `counts`: as map_rgb)."""
    cdef Py_ssize_t h = image.shape[0], w = image.shape[1], i, j
    cdef bint stats = exact is not None and counts is not None
    cdef const uint8_t* ex = &exact[0] if stats else NULL
    cdef int64_t n = 0, n_ignore = 0
    cdef label_t a, mark = <label_t>ignore
    with nogil:
        for i in range(h):
            for j in range(w):
                a = lut[image[i, j]]
                out[i, j] = a
                if stats:
                    n += ex[image[i, j]]
                    n_ignore += a == mark
    if stats:
        counts[0] += n
        counts[1] += n_ignore


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


cdef inline uint32_t _coarse(uint32_t key) noexcept nogil:
    """Index into the 64**3 distance table: the top 6 bits of U, V and Y."""
    return ((key >> 18) << 12) | (((key >> 10) & 63) << 6) | ((key >> 2) & 63)


cdef inline bint _near(uint32_t a, uint32_t b) noexcept nogil:
    return (a - b if a > b else b - a) <= 2


cdef inline label_t _repair(const uint8_t* u, const uint8_t* v, Py_ssize_t row_u, Py_ssize_t row_v,
                            Py_ssize_t col_u, Py_ssize_t col_v, Py_ssize_t ch, Py_ssize_t cw, Py_ssize_t i,
                            Py_ssize_t j, int shift_x, int shift_y, uint32_t luma, const label_t* coarse_label,
                            const uint8_t* coarse) noexcept nogil:
    """The label of the nearest colour among this pixel's chroma and its neighbours' on its side,
    ranked by the distance table `coarse` and labelled by `coarse_label` (both 64**3 cells, so
    they stay in cache where the full table would miss on every repaired pixel)."""
    cdef Py_ssize_t k = i >> shift_y, c = j >> shift_x, kn = k, cn = c
    if shift_y:
        kn = k - 1 if (i & 1) == 0 else k + 1
        if kn < 0 or kn >= ch:
            kn = k
    if shift_x:
        cn = c - 1 if (j & 1) == 0 else c + 1
        if cn < 0 or cn >= cw:
            cn = c
    cdef uint32_t own_u = u[k * row_u + c * col_u], own_v = v[k * row_v + c * col_v]
    cdef uint32_t best = (((own_u << 8) | own_v) << 8) | luma
    cdef uint32_t cand
    # flat chroma around the pixel: nothing to repair (an undeclared region, not an edge)
    if (_near(u[k * row_u + cn * col_u], own_u) and _near(v[k * row_v + cn * col_v], own_v)
            and _near(u[kn * row_u + c * col_u], own_u) and _near(v[kn * row_v + c * col_v], own_v)):
        return coarse_label[_coarse(best)]
    cdef uint8_t best_d = coarse[_coarse(best)], d
    cand = (((<uint32_t>u[k * row_u + cn * col_u] << 8) | v[k * row_v + cn * col_v]) << 8) | luma
    d = coarse[_coarse(cand)]
    if d < best_d:
        best, best_d = cand, d
    cand = (((<uint32_t>u[kn * row_u + c * col_u] << 8) | v[kn * row_v + c * col_v]) << 8) | luma
    d = coarse[_coarse(cand)]
    if d < best_d:
        best, best_d = cand, d
    cand = (((<uint32_t>u[kn * row_u + cn * col_u] << 8) | v[kn * row_v + cn * col_v]) << 8) | luma
    d = coarse[_coarse(cand)]
    if d < best_d:
        best = cand
    return coarse_label[_coarse(best)]


def map_yuv(const uint8_t[:, :] y, const uint8_t[:, :] u, const uint8_t[:, :] v, int shift_x, int shift_y,
            const label_t[::1] lut, const label_t[::1] coarse_label, const uint8_t[::1] coarse, int sentinel,
            label_t[:, ::1] out, Py_ssize_t row0=0, Py_ssize_t row1=-1, const uint8_t[::1] exact=None,
            int64_t[::1] counts=None, int ignore=0):
    """out[i, j] = lut[U << 16 | V << 8 | Y], chroma taken at (i >> shift_y, j >> shift_x).

    The table is indexed chroma-major so that the luma drift inside a flat
    region stays within one cache line. Planar 4:2:0 (shifts 1, 1), 4:2:2
    (1, 0) and 4:4:4 (0, 0); NV12 passes its interleaved chroma plane as two
    strided views.

    Edge repair: where `lut` holds `sentinel` (>= 0), the colour matches no
    declared colour well, as when a pixel's chroma block straddles a class
    edge; the pixel then also tries the chroma of the neighbouring blocks on
    its side, with its own luma, and takes the label of the one nearest to a
    declared colour by `coarse`, a 64**3 distance table indexed by the top 6
    bits of U, V and Y, from `coarse_label`, the label at each of its cells'
    centre (both small enough to stay in cache).

    Only rows row0 <= i < row1 (all by default) are written, so that callers
    can split a frame across threads. With `exact` and `counts`, also
    counts[0] += the pixels whose own key has exact[key] == 1 and
    counts[1] += the pixels labelled `ignore` (after repair).
    """
    cdef Py_ssize_t h = out.shape[0], w = out.shape[1], i, j, c
    cdef Py_ssize_t ys = y.strides[1], us = u.strides[1], vs = v.strides[1]
    cdef const uint8_t* yrow
    cdef const uint8_t* urow
    cdef const uint8_t* vrow
    cdef label_t* orow
    cdef uint32_t uv
    cdef label_t a
    cdef label_t mark = <label_t>sentinel if sentinel >= 0 else 0
    cdef bint repair = sentinel >= 0
    cdef const uint8_t* found
    cdef bint stats = exact is not None and counts is not None
    cdef const uint8_t* ex = &exact[0] if stats else NULL
    cdef int64_t n = 0, n_ignore = 0
    cdef uint32_t k0, k1
    cdef label_t ig = <label_t>ignore
    with nogil:
        for i in range(row0, h if row1 < 0 else row1):
            yrow = &y[i, 0]
            urow = &u[i >> shift_y, 0]
            vrow = &v[i >> shift_y, 0]
            orow = &out[i, 0]
            if ys == 1 and us == 1 and vs == 1 and shift_x == 1:
                for c in range(w >> 1):
                    uv = ((<uint32_t>urow[c] << 8) | vrow[c]) << 8
                    k0 = uv | yrow[2 * c]
                    k1 = uv | yrow[2 * c + 1]
                    orow[2 * c] = lut[k0]
                    orow[2 * c + 1] = lut[k1]
                    if stats:
                        n += ex[k0] + ex[k1]
                        n_ignore += (orow[2 * c] == ig) + (orow[2 * c + 1] == ig)
                if w & 1:
                    c = w >> 1
                    k0 = (((<uint32_t>urow[c] << 8) | vrow[c]) << 8) | yrow[w - 1]
                    orow[w - 1] = lut[k0]
                    if stats:
                        n += ex[k0]
                        n_ignore += orow[w - 1] == ig
            else:
                for j in range(w):
                    c = j >> shift_x
                    k0 = (((<uint32_t>urow[c * us] << 8) | vrow[c * vs]) << 8) | yrow[j * ys]
                    orow[j] = lut[k0]
                    if stats:
                        n += ex[k0]
                        n_ignore += orow[j] == ig
            if not repair:
                continue
            j = 0
            while j < w:
                if label_t is uint8_t:  # skip unmarked runs with memchr (SIMD)
                    found = <const uint8_t*>memchr(<const void*>(orow + j), mark, w - j)
                    if found == NULL:
                        break
                    j = found - <const uint8_t*>orow
                elif orow[j] != mark:
                    j = j + 1
                    continue
                orow[j] = _repair(&u[0, 0], &v[0, 0], u.strides[0], v.strides[0], us, vs, u.shape[0], u.shape[1],
                                  i, j, shift_x, shift_y, yrow[j * ys], &coarse_label[0], &coarse[0])
                if stats:  # marked pixels were not counted as ignored above
                    n_ignore += orow[j] == ig
                j = j + 1
    if stats:
        counts[0] += n
        counts[1] += n_ignore


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


ctypedef fused index_t:
    uint8_t
    uint16_t
    int32_t


def split_instances(const index_t[:, :] colour_index, const int32_t[::1] roi_of, uint8_t[:, :, ::1] planes,
                    int64_t[:, ::1] boxes):
    """One pass over a colour-index map: for the ROI k = roi_of[index] - 1 of each pixel
    (none when roi_of is 0), set planes[k, i, j] = 1 and grow boxes[k] = (area, x0, y0, x1, y1)
    (exclusive ends; start each row at (0, w, h, 0, 0)). `planes` starts zeroed.
    Works on runs of equal indices, which masks are made of."""
    cdef Py_ssize_t h = colour_index.shape[0], w = colour_index.shape[1], n = roi_of.shape[0]
    cdef Py_ssize_t i, j, start, k, idx
    with nogil:
        for i in range(h):
            j = 0
            while j < w:
                idx = colour_index[i, j]
                start = j
                j = j + 1
                while j < w and colour_index[i, j] == idx:
                    j = j + 1
                if idx <= 0 or idx >= n:
                    continue
                k = roi_of[idx] - 1
                if k < 0:
                    continue
                memset(&planes[k, i, start], 1, j - start)
                boxes[k, 0] += j - start
                if start < boxes[k, 1]:
                    boxes[k, 1] = start
                if i < boxes[k, 2]:
                    boxes[k, 2] = i
                if j > boxes[k, 3]:
                    boxes[k, 3] = j
                boxes[k, 4] = i + 1
