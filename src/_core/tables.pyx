# cython: language_level=3
"""Loops that build colour lookup tables: every cell (a 24-bit RGB or YUV triple) gets
1 + the index of its nearest palette colour within a radius, 0 where none is that close.
Callers validate, allocate (the index table zeroed) and split the work into slabs.

The cube is cut into blocks, recursively (the block sizes and each level's bound come
from the caller). A block keeps only the colours that can be nearest to one of its cells
within `reach`: with c_k the distance from the block centre to colour k and B the bound
on how far a cell can be from the centre, colour k stays when
c_k <= min(min_j c_j + 2 B, reach + B) (a cell's nearest colour is within min_j c_j + B
of it, hence within min_j c_j + 2 B of the centre). Blocks left without colours are filled
at once, RGB blocks inside the radius of their only colour too; blocks with few colours
left (YUV: all within reach of the nearest) or of the smallest size visit their cells,
trying the kept colours in palette order, so ties go to the smaller index exactly as a
brute-force search would.
"""
from libc.math cimport ceil, sqrt
from libc.string cimport memset
from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t

ctypedef fused index_t:
    uint8_t
    uint16_t

cdef struct Blocks:
    Py_ssize_t n           # palette size
    int levels             # block levels; level l blocks are sizes[3l:3l+3]
    const int32_t* sizes
    const double* bounds   # per level, B (the caller adds slack for double rounding)
    double reach           # colours farther than this from a cell never matter to it
    const int32_t* few     # per level: a block with at most this many colours left visits its cells
    int32_t* kept          # (levels + 1) * n: row l + 1 is what a level l block kept
    double* d2             # n: squared centre distances of the block at hand
    double nearest         # the distance from the block at hand's centre to its nearest colour
    void* table            # uint8 or uint16 cells
    bint wide
    # RGB
    const int32_t* icolours    # n * 3
    int64_t iradius2
    # YUV
    const double* colours      # n * 3
    double radius2
    const double* luma
    const double* chroma
    double kr, kb, kg
    uint8_t* dist
    int cap


cdef inline void _put(Blocks* c, Py_ssize_t key, Py_ssize_t value) noexcept nogil:
    if c.wide:
        (<uint16_t*>c.table)[key] = <uint16_t>value
    else:
        (<uint8_t*>c.table)[key] = <uint8_t>value


cdef inline double _clip255(double x) noexcept nogil:
    return 255.0 * (0.0 if x < 0.0 else (1.0 if x > 1.0 else x))


cdef Py_ssize_t _keep(Blocks* c, int level, const int32_t* parent, Py_ssize_t m, const double* colours,
                      double r, double g, double b) noexcept nogil:
    """Filter `parent` (m colours) for the block of `level` centred on (r, g, b) into row level + 1."""
    cdef Py_ssize_t i, k, kept = 0
    cdef double d, nearest = 1e300, limit, bound = c.bounds[level]
    cdef int32_t* out = c.kept + (level + 1) * c.n
    for i in range(m):
        k = parent[i]
        d = ((r - colours[3 * k]) * (r - colours[3 * k]) + (g - colours[3 * k + 1]) * (g - colours[3 * k + 1])
             + (b - colours[3 * k + 2]) * (b - colours[3 * k + 2]))
        c.d2[i] = d
        if d < nearest:
            nearest = d
    c.nearest = sqrt(nearest)
    limit = c.nearest + 2.0 * bound
    if c.reach + bound < limit:
        limit = c.reach + bound
    limit = limit * limit
    for i in range(m):
        if c.d2[i] <= limit:
            out[kept] = parent[i]
            kept += 1
    return kept


# ------------------------------------------------------------------ RGB


def rgb_slab(const int32_t[:, ::1] colours, const double[:, ::1] fcolours, int64_t radius2, double reach,
             const int32_t[:, ::1] sizes, const double[::1] bounds, const int32_t[::1] few, int32_t[:, ::1] kept,
             double[::1] d2, index_t[::1] table, int r0, int r1):
    """Fill the cells with R in [r0, r1) (a multiple of the top block size) of the 2**24 table
    indexed r << 16 | g << 8 | b: 1 + the nearest colour within squared distance `radius2`.
    `reach` = sqrt(radius2); `kept`: (levels + 1, n) scratch; `d2`: n scratch."""
    cdef Blocks c
    cdef Py_ssize_t n = colours.shape[0], k
    cdef int r, g, b, r_i, g_i, b_i, su = sizes[0, 0], sv = sizes[0, 1], sy = sizes[0, 2]
    if n == 0:
        return
    c.n = n
    c.levels = sizes.shape[0]
    c.sizes = &sizes[0, 0]
    c.bounds = &bounds[0]
    c.reach = reach
    c.few = &few[0]
    c.kept = &kept[0, 0]
    c.d2 = &d2[0]
    c.table = <void*>&table[0]
    c.wide = index_t is uint16_t
    c.icolours = &colours[0, 0]
    c.colours = &fcolours[0, 0]
    c.iradius2 = radius2
    with nogil:
        for k in range(n):
            c.kept[k] = <int32_t>k
        for r_i in range((r1 - r0) // su):
            r = r0 + r_i * su
            for g_i in range(256 // sv):
                g = g_i * sv
                for b_i in range(256 // sy):
                    b = b_i * sy
                    _rgb_block(&c, 0, r, g, b, c.kept, n)


cdef void _rgb_block(Blocks* c, int level, int r0, int g0, int b0, const int32_t* parent,
                     Py_ssize_t m) noexcept nogil:
    cdef int sr = c.sizes[3 * level], sg = c.sizes[3 * level + 1], sb = c.sizes[3 * level + 2]
    cdef int r, g, b, nr, ng, nb, r_i, g_i, b_i
    cdef Py_ssize_t kept = _keep(c, level, parent, m, c.colours, r0 + 0.5 * (sr - 1), g0 + 0.5 * (sg - 1),
                                 b0 + 0.5 * (sb - 1))
    cdef const int32_t* own = c.kept + (level + 1) * c.n
    if kept == 0:
        return  # the table is zero already
    if kept == 1 and _inside(c, level, own[0], r0, g0, b0):
        _rgb_fill(c, r0, g0, b0, sr, sg, sb, own[0] + 1)
        return
    if level + 1 == c.levels or kept <= c.few[level]:
        _rgb_cells(c, r0, g0, b0, sr, sg, sb, own, kept)
        return
    nr = c.sizes[3 * level + 3]
    ng = c.sizes[3 * level + 4]
    nb = c.sizes[3 * level + 5]
    for r_i in range(sr // nr):
        r = r0 + r_i * nr
        for g_i in range(sg // ng):
            g = g0 + g_i * ng
            for b_i in range(sb // nb):
                b = b0 + b_i * nb
                _rgb_block(c, level + 1, r, g, b, own, kept)


cdef inline bint _inside(Blocks* c, int level, Py_ssize_t k, int r0, int g0, int b0) noexcept nogil:
    """Whether the whole block lies within the radius of colour k (its farthest corner does)."""
    cdef int sr = c.sizes[3 * level], sg = c.sizes[3 * level + 1], sb = c.sizes[3 * level + 2]
    cdef int64_t dr, dg, db, a, e
    a = r0 - c.icolours[3 * k]
    e = a + sr - 1
    dr = a * a if a * a > e * e else e * e
    a = g0 - c.icolours[3 * k + 1]
    e = a + sg - 1
    dg = a * a if a * a > e * e else e * e
    a = b0 - c.icolours[3 * k + 2]
    e = a + sb - 1
    db = a * a if a * a > e * e else e * e
    return dr + dg + db <= c.iradius2


cdef void _rgb_fill(Blocks* c, int r0, int g0, int b0, int sr, int sg, int sb, Py_ssize_t value) noexcept nogil:
    cdef int r, g, b
    cdef Py_ssize_t row
    for r in range(r0, r0 + sr):
        for g in range(g0, g0 + sg):
            row = (<Py_ssize_t>r << 16) | (g << 8)
            if c.wide:
                for b in range(b0, b0 + sb):
                    (<uint16_t*>c.table)[row + b] = <uint16_t>value
            else:
                memset(<uint8_t*>c.table + row + b0, <int>value, sb)


cdef void _rgb_cells(Blocks* c, int r0, int g0, int b0, int sr, int sg, int sb, const int32_t* own,
                     Py_ssize_t m) noexcept nogil:
    cdef int r, g, b
    cdef Py_ssize_t i, k, best_k, row
    cdef int64_t d, best, dr, dg
    cdef const int32_t* col = c.icolours
    for r in range(r0, r0 + sr):
        for g in range(g0, g0 + sg):
            row = (<Py_ssize_t>r << 16) | (g << 8)
            for b in range(b0, b0 + sb):
                best = c.iradius2 + 1
                best_k = -1
                for i in range(m):
                    k = own[i]
                    dr = r - col[3 * k]
                    dg = g - col[3 * k + 1]
                    d = b - col[3 * k + 2]
                    d = dr * dr + dg * dg + d * d
                    if d < best:
                        best = d
                        best_k = k
                if best_k >= 0:
                    _put(c, row + b, best_k + 1)


# ------------------------------------------------------------------ YUV


def yuv_slab(const double[:, ::1] colours, double radius2, int cap, double reach,
             const double[::1] luma, const double[::1] chroma, double kr, double kb,
             const int32_t[:, ::1] sizes, const double[::1] bounds, const int32_t[::1] few, int32_t[:, ::1] kept,
             double[::1] d2, index_t[::1] table, uint8_t[::1] dist, int u0, int u1):
    """Fill the cells with U in [u0, u1) (a multiple of the top block size) of the chroma-major
    tables (U << 16 | V << 8 | Y). Each triple's RGB is computed as kernels.build_yuv_lut does
    (`luma[y]`, `chroma[c]`: normalised code values; clipped to 0..255, never rounded).
    table: 1 + the nearest colour within squared distance `radius2` (left alone elsewhere: zero it).
    dist: ceil(sqrt(squared distance to the nearest colour)) where that is <= `cap`, 255 elsewhere.
    `reach` >= cap and >= sqrt(radius2); `kept`: (levels + 1, n) scratch; `d2`: n scratch."""
    cdef Blocks c
    cdef Py_ssize_t n = colours.shape[0], k
    cdef int u, v, y, u_i, v_i, y_i, su = sizes[0, 0], sv = sizes[0, 1], sy = sizes[0, 2]
    if n == 0:
        with nogil:
            memset(&dist[u0 << 16], 255, (u1 - u0) << 16)
        return
    c.n = n
    c.levels = sizes.shape[0]
    c.sizes = &sizes[0, 0]
    c.bounds = &bounds[0]
    c.reach = reach
    c.few = &few[0]
    c.kept = &kept[0, 0]
    c.d2 = &d2[0]
    c.table = <void*>&table[0]
    c.wide = index_t is uint16_t
    c.colours = &colours[0, 0]
    c.radius2 = radius2
    c.luma = &luma[0]
    c.chroma = &chroma[0]
    c.kr = kr
    c.kb = kb
    c.kg = 1.0 - kr - kb
    c.dist = &dist[0]
    c.cap = cap
    with nogil:
        for k in range(n):
            c.kept[k] = <int32_t>k
        for u_i in range((u1 - u0) // su):
            u = u0 + u_i * su
            for v_i in range(256 // sv):
                v = v_i * sv
                for y_i in range(256 // sy):
                    y = y_i * sy
                    _yuv_block(&c, 0, u, v, y, c.kept, n)


cdef void _yuv_block(Blocks* c, int level, int u0, int v0, int y0, const int32_t* parent,
                     Py_ssize_t m) noexcept nogil:
    cdef int su = c.sizes[3 * level], sv = c.sizes[3 * level + 1], sy = c.sizes[3 * level + 2]
    cdef int u, v, y, nu, nv, ny, u_i, v_i, y_i
    # the block centre's RGB, from the code values halfway between its first and last cells
    cdef double lum = 0.5 * (c.luma[y0] + c.luma[y0 + sy - 1])
    cdef double cb_b = 2.0 * (1.0 - c.kb) * (0.5 * (c.chroma[u0] + c.chroma[u0 + su - 1]))
    cdef double cr_r = 2.0 * (1.0 - c.kr) * (0.5 * (c.chroma[v0] + c.chroma[v0 + sv - 1]))
    cdef double r = lum + cr_r, b = lum + cb_b
    cdef double g = (lum - c.kr * r - c.kb * b) / c.kg
    cdef Py_ssize_t kept = _keep(c, level, parent, m, c.colours, _clip255(r), _clip255(g), _clip255(b))
    cdef const int32_t* own = c.kept + (level + 1) * c.n
    if kept == 0:
        for u in range(u0, u0 + su):
            for v in range(v0, v0 + sv):
                memset(c.dist + ((<Py_ssize_t>u << 16) | (v << 8) | y0), 255, sy)
        return
    if level + 1 == c.levels or (kept <= c.few[level] and c.nearest + c.bounds[level] <= c.reach):
        _yuv_cells(c, u0, v0, y0, su, sv, sy, own, kept)
        return
    nu = c.sizes[3 * level + 3]
    nv = c.sizes[3 * level + 4]
    ny = c.sizes[3 * level + 5]
    for u_i in range(su // nu):
        u = u0 + u_i * nu
        for v_i in range(sv // nv):
            v = v0 + v_i * nv
            for y_i in range(sy // ny):
                y = y0 + y_i * ny
                _yuv_block(c, level + 1, u, v, y, own, kept)


cdef void _yuv_cells(Blocks* c, int u0, int v0, int y0, int su, int sv, int sy, const int32_t* own,
                     Py_ssize_t m) noexcept nogil:
    cdef int u, v, y
    cdef Py_ssize_t i, k, best_k, key
    cdef double r, g, b, d, best, cb_b, cr_r, kr = c.kr, kb = c.kb, kg = c.kg, radius2 = c.radius2
    cdef double cap2 = <double>c.cap * c.cap if c.cap < 255 else 255.0 * 255.0  # dist saturates at 255
    cdef const double* col = c.colours
    cdef const double* luma = c.luma
    for u in range(u0, u0 + su):
        cb_b = 2.0 * (1.0 - kb) * c.chroma[u]
        for v in range(v0, v0 + sv):
            cr_r = 2.0 * (1.0 - kr) * c.chroma[v]
            key = (<Py_ssize_t>u << 16) | (v << 8)
            for y in range(y0, y0 + sy):
                # exactly kernels.build_yuv_lut's arithmetic, so every distance is bit for bit the same
                r = luma[y] + cr_r
                b = luma[y] + cb_b
                g = (luma[y] - kr * r - kb * b) / kg
                r = 255.0 * (0.0 if r < 0.0 else (1.0 if r > 1.0 else r))
                g = 255.0 * (0.0 if g < 0.0 else (1.0 if g > 1.0 else g))
                b = 255.0 * (0.0 if b < 0.0 else (1.0 if b > 1.0 else b))
                if m == 1:
                    k = own[0]
                    best = ((r - col[3 * k]) * (r - col[3 * k]) + (g - col[3 * k + 1]) * (g - col[3 * k + 1])
                            + (b - col[3 * k + 2]) * (b - col[3 * k + 2]))
                    if best <= radius2:
                        _put(c, key | y, k + 1)
                    c.dist[key | y] = <uint8_t>ceil(sqrt(best)) if best <= cap2 else 255
                    continue
                best = 1e300
                best_k = 0
                for i in range(m):
                    k = own[i]
                    d = ((r - col[3 * k]) * (r - col[3 * k]) + (g - col[3 * k + 1]) * (g - col[3 * k + 1])
                         + (b - col[3 * k + 2]) * (b - col[3 * k + 2]))
                    if d < best:
                        best = d
                        best_k = k
                if best <= radius2:
                    _put(c, key | y, best_k + 1)
                c.dist[key | y] = <uint8_t>ceil(sqrt(best)) if best <= cap2 else 255


def pack_above(const uint8_t[::1] values, int threshold, uint8_t[::1] out):
    """out[k >> 3] bit (k & 7) = values[k] > threshold (little-endian bit order within each
    byte, as numpy.packbits(values > threshold, bitorder="little")); out has len(values) / 8
    bytes (callers give a multiple of 8 values)."""
    cdef Py_ssize_t n = values.shape[0] >> 3, k, b
    cdef uint8_t bits
    with nogil:
        for k in range(n):
            bits = 0
            for b in range(8):
                bits |= (values[8 * k + b] > threshold) << b
            out[k] = bits
