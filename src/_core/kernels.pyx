# cython: language_level=3
"""Pixel loops of maskdec. Callers validate shapes, dtypes and allocate `out`.

Every function here only loops; it releases the GIL and accepts strided,
read-only input.
"""
from libc.string cimport memchr, memcpy, memset
from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t

ctypedef fused label_t:
    uint8_t
    uint16_t

ctypedef fused gray_t:
    uint8_t
    uint16_t

ctypedef fused pal_t:  # palette indices: 1 + the position of a colour in its palette, 0 for none
    uint8_t
    uint16_t


def map_rgb(const uint8_t[:, :, :] image, const pal_t[::1] lut, const label_t[::1] remap, label_t[:, :] out,
            const uint8_t[::1] exact=None, int64_t[::1] counts=None, int ignore=0):
    """out[i, j] = remap[lut[r << 16 | g << 8 | b]] for the pixel (r, g, b) at image[i, j]:
    `lut` gives each colour's palette index, `remap` each palette index's label.

    Per-sample statistics in the same pass, with `exact` and `counts`: counts[0] += the
    pixels whose key has exact[key] == 1 and a label other than `ignore`, counts[1] += the
    pixels labelled `ignore`."""
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
                    a = remap[lut[key]]
                    out[i, j] = a
                    if stats:
                        n += ex[key] & (a != mark)
                        n_ignore += a == mark
            else:
                for j in range(w):
                    key = ((<uint32_t>row[j * sj] << 16) | (<uint32_t>row[j * sj + sc] << 8)
                           | row[j * sj + 2 * sc])
                    a = remap[lut[key]]
                    out[i, j] = a
                    if stats:
                        n += ex[key] & (a != mark)
                        n_ignore += a == mark
    if stats:
        counts[0] += n
        counts[1] += n_ignore


def map_gray(const gray_t[:, :] image, const pal_t[::1] lut, const label_t[::1] remap, label_t[:, :] out,
             const uint8_t[::1] exact=None, int64_t[::1] counts=None, int ignore=0):
    """out[i, j] = remap[lut[image[i, j]]] for 8- or 16-bit single-channel masks (`exact`, `counts`: as map_rgb)."""
    cdef Py_ssize_t h = image.shape[0], w = image.shape[1], i, j
    cdef bint stats = exact is not None and counts is not None
    cdef const uint8_t* ex = &exact[0] if stats else NULL
    cdef int64_t n = 0, n_ignore = 0
    cdef label_t a, mark = <label_t>ignore
    with nogil:
        for i in range(h):
            for j in range(w):
                a = remap[lut[image[i, j]]]
                out[i, j] = a
                if stats:
                    n += ex[image[i, j]] & (a != mark)
                    n_ignore += a == mark
    if stats:
        counts[0] += n
        counts[1] += n_ignore


def remap(const pal_t[:, :] index, const label_t[::1] table, label_t[:, :] out):
    """out[i, j] = table[index[i, j]]: palette indices to labels (or ROI numbers)."""
    cdef Py_ssize_t h = index.shape[0], w = index.shape[1], i, j
    with nogil:
        for i in range(h):
            for j in range(w):
                out[i, j] = table[index[i, j]]


cdef inline uint32_t _coarse(uint32_t key) noexcept nogil:
    """Index into the 64**3 distance table: the top 6 bits of U, V and Y."""
    return ((key >> 18) << 12) | (((key >> 10) & 63) << 6) | ((key >> 2) & 63)


cdef inline bint _near(uint32_t a, uint32_t b) noexcept nogil:
    return (a - b if a > b else b - a) <= 2


cdef inline uint64_t _min64(uint64_t a, uint64_t b) noexcept nogil:
    return b if b < a else a


cdef inline Py_ssize_t _repair(const uint8_t* u_own, const uint8_t* v_own, const uint8_t* u_side,
                               const uint8_t* v_side, Py_ssize_t us, Py_ssize_t vs, Py_ssize_t c, Py_ssize_t cn,
                               uint32_t luma, const pal_t* coarse_label, const uint8_t* coarse) noexcept nogil:
    """The label of the nearest colour among a pixel's chroma (column c of the rows u_own, v_own)
    and its neighbours' on its side (column cn; rows u_side, v_side), ranked by the distance
    table `coarse`; the palette index from `coarse_label` (both 64**3 cells, so they stay in
    cache where the full table would miss on every repaired pixel)."""
    cdef uint32_t own_u = u_own[c * us], own_v = v_own[c * vs]
    cdef uint32_t hor_u = u_own[cn * us], hor_v = v_own[cn * vs]
    cdef uint32_t ver_u = u_side[c * us], ver_v = v_side[c * vs]
    cdef uint32_t best = (((own_u << 8) | own_v) << 8) | luma, cand
    # the nearest by coarse distance, ties to the pixel's own chroma: minimum of (distance, rank, key),
    # branch-free (which of the candidates wins is a coin toss the branch predictor would lose)
    cdef uint64_t ranked = (<uint64_t>coarse[_coarse(best)] << 26) | best
    cand = (((hor_u << 8) | hor_v) << 8) | luma
    ranked = _min64(ranked, (<uint64_t>coarse[_coarse(cand)] << 26) | (1 << 24) | cand)
    cand = (((ver_u << 8) | ver_v) << 8) | luma
    ranked = _min64(ranked, (<uint64_t>coarse[_coarse(cand)] << 26) | (2 << 24) | cand)
    cand = (((<uint32_t>u_side[cn * us] << 8) | v_side[cn * vs]) << 8) | luma
    ranked = _min64(ranked, (<uint64_t>coarse[_coarse(cand)] << 26) | (3 << 24) | cand)
    best = <uint32_t>(ranked & 0xFFFFFF)
    return coarse_label[_coarse(best)]


cdef inline void _fill(label_t* out, label_t value, Py_ssize_t n) noexcept nogil:
    """out[0:n] = value."""
    cdef Py_ssize_t j
    if label_t is uint8_t:
        memset(out, value, n)
    else:
        for j in range(n):
            out[j] = value


def map_yuv(const uint8_t[:, :] y, const uint8_t[:, :] u, const uint8_t[:, :] v, int shift_x, int shift_y,
            const pal_t[::1] lut, const label_t[::1] remap, label_t[:, ::1] out, const uint8_t[::1] far_bits=None,
            const pal_t[::1] coarse_label=None, const uint8_t[::1] coarse=None, bint repair=False,
            uint8_t[:, ::1] scratch=None, Py_ssize_t row0=0, Py_ssize_t row1=-1,
            const uint8_t[::1] exact=None, int64_t[::1] counts=None, int ignore=0,
            label_t[::1] run_values=None, uint32_t[::1] run_ends=None, int64_t[::1] run_rows=None) -> Py_ssize_t:
    """out[i, j] = remap[lut[U << 16 | V << 8 | Y]], chroma taken at (i >> shift_y, j >> shift_x):
    `lut` gives the palette index of each YUV triple, `remap` the label of each palette index.

    The table is indexed chroma-major so that the luma drift inside a flat
    region stays within one cache line. Planar 4:2:0 (shifts 1, 1), 4:2:2
    (1, 0) and 4:4:4 (0, 0); NV12 passes its interleaved chroma plane as two
    strided views.

    Edge repair (with repair, 2:1 horizontal chroma): a pixel whose chroma differs
    (by more than 2 code values) from the neighbouring chroma on its side
    (horizontally or vertically) lies on an edge; if also its own colour is far
    from every palette colour (bit key of `far_bits`, 2**24 bits, little-endian
    within each byte: small enough to stay mostly in cache, where a byte table of
    distances would miss on every edge pixel), its chroma block straddles a class edge. Such a pixel tries the chroma
    of the neighbouring blocks on its side, with its own luma, and takes the one
    nearest to a palette colour by `coarse`, a 64**3 distance table indexed by the
    top 6 bits of U, V and Y; its palette index comes from `coarse_label`, the index
    at each of its cells' centre (both small enough to stay in cache), its label
    from `remap`. Pixels off edges (flat regions, declared or not) are never
    visited: edges are found on the chroma rows first (16 columns at a time with
    SSE2, flat stretches 32 at a time with AVX2), once for the two pixel rows of
    a 4:2:0 chroma row. `scratch`:
    (8, w + 8) bytes or more (each pixel row's candidate positions), one per
    concurrent call.

    Only rows row0 <= i < row1 (all by default) are written, so that callers
    can split a frame across threads. With `exact` and `counts`, also
    counts[0] += the pixels whose own key has exact[key] == 1 and whose label is not
    `ignore`, and counts[1] += the pixels labelled `ignore` (after repair).

    Runs mode, with run_values, run_ends and run_rows (whole frames, no counts): the
    labels come out run-length coded as encode_runs codes them (run_rows has h + 1
    entries), and `out` is only a (2, w) buffer for the row pair being mapped, so the
    frame's labels are never written out whole. Returns the number of runs, or -1
    (stopping there) when run_values and run_ends hold fewer; 0 otherwise.
    """
    cdef Py_ssize_t h = y.shape[0], w = out.shape[1], end = h if row1 < 0 else row1, i, j, c, r, rows
    cdef Py_ssize_t cw = u.shape[1], ch = u.shape[0], k, up, down, half = w >> 1
    cdef uint64_t ya, yb, na, nb
    cdef uint32_t ua, ub, va, vb
    cdef Py_ssize_t ys = y.strides[1], us = u.strides[1], vs = v.strides[1]
    cdef const uint8_t* yrow
    cdef const uint8_t* ynext
    cdef const uint8_t* urow
    cdef const uint8_t* vrow
    cdef label_t* orow
    cdef label_t* onext
    cdef const pal_t* base
    cdef bint packed = ys == 1 and us == 1 and vs == 1 and shift_x == 1
    cdef bint avx2 = md_avx2 != 0
    repair = repair and shift_x == 1
    cdef int32_t* spots = NULL
    cdef int32_t* spots_dn = NULL
    cdef Py_ssize_t m_up = 0, m_dn = 0
    if repair and (scratch is None or scratch.shape[0] < 8 or scratch.shape[1] < w + 8
                   or scratch.strides[0] != scratch.shape[1]):
        raise ValueError("map_yuv: edge repair needs a C-contiguous (8, width + 8) scratch")
    if repair:  # carve the scratch rows: each pixel row's candidate positions (int32)
        spots = <int32_t*>&scratch[0, 0]
        spots_dn = <int32_t*>&scratch[4, 0]
    cdef bint stats = exact is not None and counts is not None
    cdef bint runs = run_values is not None and run_ends is not None and run_rows is not None
    if runs and (stats or row0 != 0 or end != h or out.shape[0] < 2 or run_rows.shape[0] < h + 1):
        raise ValueError("map_yuv: runs mode maps whole frames, without counts, into a (2, width) out")
    if not runs and out.shape[0] != h:
        raise ValueError("map_yuv: out must have the frame's height")
    cdef Py_ssize_t room = min(run_values.shape[0], run_ends.shape[0]) if runs else 0, n_runs = 0
    cdef label_t* run_v = &run_values[0] if runs and room > 0 else NULL
    cdef uint32_t* run_e = &run_ends[0] if runs and room > 0 else NULL
    cdef Py_ssize_t o  # the row of `out` that pixel row i goes to
    cdef const uint8_t* ex = &exact[0] if stats else NULL
    cdef int64_t n = 0
    with nogil:
        i = row0
        while i < end:
            yrow = &y[i, 0]
            urow = &u[i >> shift_y, 0]
            vrow = &v[i >> shift_y, 0]
            o = (i & 1) if runs else i
            orow = &out[o, 0]
            rows = 1
            if packed and shift_y == 1 and (i & 1) == 0 and i + 1 < end:
                # 4:2:0, both rows of a chroma row at once: one chroma read serves four pixels
                rows = 2
                ynext = &y[i + 1, 0]
                onext = &out[o + 1, 0]
                c = 0
                while c < half:
                    # 4 chroma columns (8 pixels of each row) whose Y, U and V all equal the
                    # previous column's have its labels: masks are mostly flat, so most of a
                    # frame is copied, not looked up (a check per 8 pixels where it is not);
                    # 32 (AVX2) or 16 columns at once first, as flat runs are long
                    if avx2 and 0 < c <= half - 32 and md_flat32(yrow + 2 * c, ynext + 2 * c, urow + c, vrow + c):
                        _fill(orow + 2 * c, orow[2 * c - 1], 64)
                        _fill(onext + 2 * c, onext[2 * c - 1], 64)
                        c = c + 32
                        continue
                    if 0 < c <= half - 16 and md_flat16(yrow + 2 * c, ynext + 2 * c, urow + c, vrow + c):
                        _fill(orow + 2 * c, orow[2 * c - 1], 32)
                        _fill(onext + 2 * c, onext[2 * c - 1], 32)
                        c = c + 16
                        continue
                    if 0 < c <= half - 4:
                        memcpy(&ya, yrow + 2 * c, 8)
                        memcpy(&yb, yrow + 2 * c - 1, 8)
                        memcpy(&na, ynext + 2 * c, 8)
                        memcpy(&nb, ynext + 2 * c - 1, 8)
                        memcpy(&ua, urow + c, 4)
                        memcpy(&ub, urow + c - 1, 4)
                        memcpy(&va, vrow + c, 4)
                        memcpy(&vb, vrow + c - 1, 4)
                        if ya == yb and na == nb and ua == ub and va == vb:
                            _fill(orow + 2 * c, orow[2 * c - 1], 8)
                            _fill(onext + 2 * c, onext[2 * c - 1], 8)
                            c = c + 4
                            continue
                    for c in range(c, c + 4 if c + 4 <= half else half):
                        base = &lut[((<uint32_t>urow[c] << 8) | vrow[c]) << 8]
                        orow[2 * c] = remap[base[yrow[2 * c]]]
                        orow[2 * c + 1] = remap[base[yrow[2 * c + 1]]]
                        onext[2 * c] = remap[base[ynext[2 * c]]]
                        onext[2 * c + 1] = remap[base[ynext[2 * c + 1]]]
                    c = c + 1
                if w & 1:
                    base = &lut[((<uint32_t>urow[w >> 1] << 8) | vrow[w >> 1]) << 8]
                    orow[w - 1] = remap[base[yrow[w - 1]]]
                    onext[w - 1] = remap[base[ynext[w - 1]]]
            elif packed:
                c = 0
                while c < half:  # as above, one row
                    if 0 < c <= half - 4:
                        memcpy(&ya, yrow + 2 * c, 8)
                        memcpy(&yb, yrow + 2 * c - 1, 8)
                        memcpy(&ua, urow + c, 4)
                        memcpy(&ub, urow + c - 1, 4)
                        memcpy(&va, vrow + c, 4)
                        memcpy(&vb, vrow + c - 1, 4)
                        if ya == yb and ua == ub and va == vb:
                            _fill(orow + 2 * c, orow[2 * c - 1], 8)
                            c = c + 4
                            continue
                    for c in range(c, c + 4 if c + 4 <= half else half):
                        base = &lut[((<uint32_t>urow[c] << 8) | vrow[c]) << 8]
                        orow[2 * c] = remap[base[yrow[2 * c]]]
                        orow[2 * c + 1] = remap[base[yrow[2 * c + 1]]]
                    c = c + 1
                if w & 1:
                    orow[w - 1] = remap[lut[(((<uint32_t>urow[w >> 1] << 8) | vrow[w >> 1]) << 8) | yrow[w - 1]]]
            else:
                for j in range(w):
                    c = j >> shift_x
                    orow[j] = remap[lut[(((<uint32_t>urow[c * us] << 8) | vrow[c * vs]) << 8) | yrow[j * ys]]]
            if repair and cw >= 2:
                k = i >> shift_y
                if rows == 2:  # one edge scan serves both pixel rows of the chroma row
                    up, down = _side_row(k, -1, ch), _side_row(k, 1, ch)
                    md_edge_candidates(&u[k, 0], &v[k, 0], &u[up, 0], &v[up, 0], &u[down, 0], &v[down, 0], us, vs,
                                       cw, &y[i, 0], &y[i + 1, 0], ys, w, &far_bits[0], spots, &m_up, spots_dn,
                                       &m_dn)
                else:  # the side of a pixel row: above for the upper row of a 4:2:0 chroma row, else below
                    up = _side_row(k, (-1 if (i & 1) == 0 else 1) if shift_y else 0, ch)
                    down = up
                    md_edge_candidates(&u[k, 0], &v[k, 0], &u[up, 0], &v[up, 0], NULL, NULL, us, vs, cw, &y[i, 0],
                                       NULL, ys, w, &far_bits[0], spots, &m_up, NULL, &m_dn)
                _repair_pixels(m_up, spots, &u[k, 0], &v[k, 0], &u[up, 0], &v[up, 0], us, vs, cw, &y[i, 0], ys,
                               orow, &coarse_label[0], &coarse[0], &remap[0])
                if rows == 2:
                    _repair_pixels(m_dn, spots_dn, &u[k, 0], &v[k, 0], &u[down, 0], &v[down, 0], us, vs, cw,
                                   &y[i + 1, 0], ys, onext, &coarse_label[0], &coarse[0], &remap[0])
            if stats:
                for r in range(i, i + rows):
                    n += _count_exact(u, v, &y[r, 0], ys, &out[r, 0], w, r, shift_x, shift_y, ex, ignore)
            if runs:
                for r in range(i, i + rows):
                    run_rows[r] = n_runs
                    if w > 0:
                        n_runs = _encode_row(&out[r & 1, 0], w, run_v, run_e, n_runs, room)
                    if n_runs < 0:
                        break
                if n_runs < 0:
                    break
            i += rows
        if runs and n_runs >= 0:
            run_rows[h] = n_runs
    if stats:
        counts[0] += n
        counts[1] += _count_equal(out, row0, end, ignore)
    return n_runs


cdef extern from *:
    """
    #if defined(__SSE2__)
    #include <emmintrin.h>
    #endif
    /* AVX2 versions of the flat-run checks, chosen at run time (the module is built for plain x86-64) */
    #if defined(__SSE2__) && defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    #define MD_AVX2 1
    #include <immintrin.h>
    #define MD_AVX2_FN __attribute__((target("avx2")))
    #else
    #define MD_AVX2 0
    #endif
    static int md_avx2 = 0;  /* set once at import by md_cpu_init */

    static void md_cpu_init(int allowed) {
    #if MD_AVX2
        __builtin_cpu_init();
        md_avx2 = allowed && __builtin_cpu_supports("avx2");
    #else
        (void)allowed;
        md_avx2 = 0;
    #endif
    }

    #if MD_AVX2
    static inline MD_AVX2_FN __m256i md_eq32(const uint8_t* a, const uint8_t* b) {
        return _mm256_cmpeq_epi8(_mm256_loadu_si256((const __m256i*)a), _mm256_loadu_si256((const __m256i*)b));
    }

    /* md_flat16 for 32 chroma columns (64 pixels of each luma row). */
    static MD_AVX2_FN int md_flat32(const uint8_t* y0, const uint8_t* y1, const uint8_t* u, const uint8_t* v) {
        __m256i same = _mm256_and_si256(_mm256_and_si256(md_eq32(y0, y0 - 1), md_eq32(y0 + 32, y0 + 31)),
                                        _mm256_and_si256(md_eq32(y1, y1 - 1), md_eq32(y1 + 32, y1 + 31)));
        same = _mm256_and_si256(same, _mm256_and_si256(md_eq32(u, u - 1), md_eq32(v, v - 1)));
        return _mm256_movemask_epi8(same) == -1;
    }

    /* Whether 32 chroma columns (u, v) equal their left and right neighbours and the side rows
       (uup, vup; udn, vdn unless NULL) at the same columns: no edge repair candidates there. */
    static MD_AVX2_FN int md_flat32_edges(const uint8_t* u, const uint8_t* v, const uint8_t* uup, const uint8_t* vup,
                                         const uint8_t* udn, const uint8_t* vdn) {
        __m256i same = _mm256_and_si256(_mm256_and_si256(md_eq32(u, u - 1), md_eq32(u, u + 1)),
                                        _mm256_and_si256(md_eq32(v, v - 1), md_eq32(v, v + 1)));
        same = _mm256_and_si256(same, _mm256_and_si256(md_eq32(u, uup), md_eq32(v, vup)));
        if (udn != NULL)
            same = _mm256_and_si256(same, _mm256_and_si256(md_eq32(u, udn), md_eq32(v, vdn)));
        return _mm256_movemask_epi8(same) == -1;
    }
    #else
    static inline int md_flat32(const uint8_t* y0, const uint8_t* y1, const uint8_t* u, const uint8_t* v) {
        (void)y0; (void)y1; (void)u; (void)v;
        return 0;
    }
    #endif

    /* 1 when two code values differ by more than 2 (branch-free: a - b + 2 wraps when negative). */
    static inline uint32_t md_far(uint32_t a, uint32_t b) { return (a - b + 2u) > 4u; }

    /* 1 when the colour key (U << 16 | V << 8 | Y) is far from every palette colour: bit key of `far`. */
    static inline uint32_t md_far_key(const uint8_t* far, uint32_t key) { return (far[key >> 3] >> (key & 7)) & 1; }

    /* Append the candidate pixels of chroma column c in one pixel row (see md_edge_candidates). */
    static inline Py_ssize_t md_column(Py_ssize_t c, const uint8_t* u, const uint8_t* v, const uint8_t* uside,
                                       const uint8_t* vside, Py_ssize_t us, Py_ssize_t vs, Py_ssize_t cw,
                                       const uint8_t* y, Py_ssize_t ys, Py_ssize_t w, const uint8_t* far,
                                       int32_t* spots, Py_ssize_t m) {
        uint32_t own_u = u[c * us], own_v = v[c * vs];
        uint32_t side = md_far(own_u, uside[c * us]) | md_far(own_v, vside[c * vs]);
        for (Py_ssize_t j = 2 * c; j < 2 * c + 2 && j < w; j++) {
            Py_ssize_t cn = (j & 1) == 0 ? c - 1 : c + 1;
            if (cn < 0 || cn >= cw) cn = c;
            spots[m] = (int32_t)j;
            /* branch-free append */
            m += (side | md_far(own_u, u[cn * us]) | md_far(own_v, v[cn * vs]))
                 & md_far_key(far, (((own_u << 8) | own_v) << 8) | y[j * ys]);
        }
        return m;
    }

    /* Whether interior chroma column c equals its left, right and side neighbours (no candidates). */
    static inline int md_flat_column(Py_ssize_t c, const uint8_t* u, const uint8_t* v, const uint8_t* uup,
                                     const uint8_t* vup, const uint8_t* udn, const uint8_t* vdn, Py_ssize_t us,
                                     Py_ssize_t vs) {
        uint8_t a = u[c * us], b = v[c * vs];
        return a == u[(c - 1) * us] && a == u[(c + 1) * us] && a == uup[c * us]
            && b == v[(c - 1) * vs] && b == v[(c + 1) * vs] && b == vup[c * vs]
            && (udn == NULL || (a == udn[c * us] && b == vdn[c * vs]));
    }

    /* Nonzero when the 8 * words bytes at a and b differ (branch-free: xor, or). */
    static inline uint64_t md_differs(const uint8_t* a, const uint8_t* b, int words) {
        uint64_t x, y, d = 0;
        for (int k = 0; k < words; k++) {
            memcpy(&x, a + 8 * k, 8);
            memcpy(&y, b + 8 * k, 8);
            d |= x ^ y;
        }
        return d;
    }

    /* The index of the lowest-addressed nonzero byte of the 8 bytes read into x (x != 0), or -1 where
       that is not the lowest-order byte (not little-endian). */
    static inline Py_ssize_t md_first_byte(uint64_t x) {
    #if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        return __builtin_ctzll(x) >> 3;
    #else
        (void)x;
        return -1;
    #endif
    }

    /* Whether 16 chroma columns of a 4:2:0 row pair (their 32 pixels of each luma row y0, y1, and
       chroma u, v) all equal the column before them (y0[-1], y1[-1], u[-1], v[-1] are read). */
    static inline int md_flat16(const uint8_t* y0, const uint8_t* y1, const uint8_t* u, const uint8_t* v) {
    #if defined(__SSE2__)
        __m128i same = _mm_and_si128(
            _mm_and_si128(_mm_cmpeq_epi8(_mm_loadu_si128((const __m128i*)y0), _mm_loadu_si128((const __m128i*)(y0 - 1))),
                          _mm_cmpeq_epi8(_mm_loadu_si128((const __m128i*)(y0 + 16)),
                                         _mm_loadu_si128((const __m128i*)(y0 + 15)))),
            _mm_and_si128(_mm_cmpeq_epi8(_mm_loadu_si128((const __m128i*)y1), _mm_loadu_si128((const __m128i*)(y1 - 1))),
                          _mm_cmpeq_epi8(_mm_loadu_si128((const __m128i*)(y1 + 16)),
                                         _mm_loadu_si128((const __m128i*)(y1 + 15)))));
        same = _mm_and_si128(same, _mm_and_si128(
            _mm_cmpeq_epi8(_mm_loadu_si128((const __m128i*)u), _mm_loadu_si128((const __m128i*)(u - 1))),
            _mm_cmpeq_epi8(_mm_loadu_si128((const __m128i*)v), _mm_loadu_si128((const __m128i*)(v - 1)))));
        return _mm_movemask_epi8(same) == 0xFFFF;
    #else
        return (md_differs(y0, y0 - 1, 4) | md_differs(y1, y1 - 1, 4) | md_differs(u, u - 1, 2)
                | md_differs(v, v - 1, 2)) == 0;
    #endif
    }

    /* Equal bytes, 8 at a time. */
    static inline int md_same8(const uint8_t* a, const uint8_t* b) {
        uint64_t x, y;
        memcpy(&x, a, 8);
        memcpy(&y, b, 8);
        return x == y;
    }

    #if defined(__SSE2__)
    /* 0xFF in each byte where a and b differ by at most 2. */
    static inline __m128i md_near16(__m128i a, __m128i b) {
        __m128i diff = _mm_or_si128(_mm_subs_epu8(a, b), _mm_subs_epu8(b, a));
        return _mm_cmpeq_epi8(_mm_subs_epu8(diff, _mm_set1_epi8(2)), _mm_setzero_si128());
    }

    /* Append the pixels of `mask` (bit b: pixel j0 + b) whose colour is far from the palette; chroma
       (u, v) of pixel j0 + b at index b >> 1 of cu, cv. */
    static inline Py_ssize_t md_append(uint32_t mask, Py_ssize_t j0, const uint8_t* cu, const uint8_t* cv,
                                       const uint8_t* y, const uint8_t* far, int32_t* spots, Py_ssize_t m) {
        while (mask) {
            int b = __builtin_ctz(mask);
            mask &= mask - 1;
            spots[m] = (int32_t)(j0 + b);
            m += md_far_key(far, ((((uint32_t)cu[b >> 1] << 8) | cv[b >> 1]) << 8) | y[j0 + b]);
        }
        return m;
    }

    /* Candidate bits of 16 chroma columns' 32 pixels, from the masks of columns near their left (nl) and
       right (nr) neighbours and near their side row (ns): bit 2k is pixel 2k (left), 2k + 1 pixel 2k + 1. */
    static inline uint32_t md_pixel_bits(__m128i nl, __m128i nr, __m128i ns) {
        __m128i left = _mm_and_si128(ns, nl), right = _mm_and_si128(ns, nr);
        uint32_t lo = (uint32_t)_mm_movemask_epi8(_mm_unpacklo_epi8(left, right));
        uint32_t hi = (uint32_t)_mm_movemask_epi8(_mm_unpackhi_epi8(left, right));
        return ~(lo | (hi << 16));
    }
    #endif

    /* Edge repair candidates of one chroma row (cw >= 2 columns; u, v) for the pixel rows it covers: the
       upper row (luma yup, side chroma row uup, vup) and, unless udn is NULL, the lower row (ydn; udn, vdn).
       A pixel is a candidate when its chroma differs (md_far) from the chroma row on its side or from the
       neighbouring column on its side (left for even pixels, right for odd ones), and its own colour is
       far from every palette colour (bit key of `far`). Appends each row's candidates' positions, in
       ascending order, to its spots, and stores their number in *n_up, *n_dn. Packed rows go 16 columns
       at a time where SSE2 is available (else 8, skipping only flat runs), skipping columns equal to all
       their neighbours, 32 at a time first where AVX2 is. */
    static void md_edge_candidates(const uint8_t* u, const uint8_t* v, const uint8_t* uup, const uint8_t* vup,
                                   const uint8_t* udn, const uint8_t* vdn, Py_ssize_t us, Py_ssize_t vs,
                                   Py_ssize_t cw, const uint8_t* yup, const uint8_t* ydn, Py_ssize_t ys,
                                   Py_ssize_t w, const uint8_t* far, int32_t* spots_up, Py_ssize_t* n_up,
                                   int32_t* spots_dn, Py_ssize_t* n_dn) {
        Py_ssize_t mu = 0, md = 0, c = 0;
        int packed = us == 1 && vs == 1 && ys == 1;
        while (c < cw) {
    #if MD_AVX2
            if (md_avx2 && packed && c >= 1 && c + 33 <= cw
                    && md_flat32_edges(u + c, v + c, uup + c, vup + c, udn == NULL ? NULL : udn + c,
                                       vdn == NULL ? NULL : vdn + c)) {
                c += 32;
                continue;
            }
    #endif
    #if defined(__SSE2__)
            if (packed && c >= 1 && c + 17 <= cw) {
                __m128i a = _mm_loadu_si128((const __m128i*)(u + c));
                __m128i l = _mm_loadu_si128((const __m128i*)(u + c - 1));
                __m128i r = _mm_loadu_si128((const __m128i*)(u + c + 1));
                __m128i p = _mm_loadu_si128((const __m128i*)(uup + c));
                __m128i va = _mm_loadu_si128((const __m128i*)(v + c));
                __m128i vl = _mm_loadu_si128((const __m128i*)(v + c - 1));
                __m128i vr = _mm_loadu_si128((const __m128i*)(v + c + 1));
                __m128i vp = _mm_loadu_si128((const __m128i*)(vup + c));
                __m128i d = a, vd = va;
                if (udn != NULL) {
                    d = _mm_loadu_si128((const __m128i*)(udn + c));
                    vd = _mm_loadu_si128((const __m128i*)(vdn + c));
                }
                __m128i same = _mm_and_si128(_mm_and_si128(_mm_cmpeq_epi8(a, l), _mm_cmpeq_epi8(a, r)),
                                             _mm_and_si128(_mm_cmpeq_epi8(a, p), _mm_cmpeq_epi8(a, d)));
                same = _mm_and_si128(same, _mm_and_si128(_mm_and_si128(_mm_cmpeq_epi8(va, vl), _mm_cmpeq_epi8(va, vr)),
                                                         _mm_and_si128(_mm_cmpeq_epi8(va, vp), _mm_cmpeq_epi8(va, vd))));
                if (_mm_movemask_epi8(same) != 0xFFFF) {  /* not flat: which pixels are candidates */
                    __m128i nl = _mm_and_si128(md_near16(a, l), md_near16(va, vl));
                    __m128i nr = _mm_and_si128(md_near16(a, r), md_near16(va, vr));
                    __m128i np = _mm_and_si128(md_near16(a, p), md_near16(va, vp));
                    mu = md_append(md_pixel_bits(nl, nr, np), 2 * c, u + c, v + c, yup, far, spots_up, mu);
                    if (udn != NULL) {
                        __m128i nd = _mm_and_si128(md_near16(a, d), md_near16(va, vd));
                        md = md_append(md_pixel_bits(nl, nr, nd), 2 * c, u + c, v + c, ydn, far, spots_dn, md);
                    }
                }
                c += 16;
                continue;
            }
    #else
            if (packed && c >= 1 && c + 9 <= cw && md_same8(u + c, u + c - 1) && md_same8(u + c, u + c + 1)
                    && md_same8(u + c, uup + c) && md_same8(v + c, v + c - 1) && md_same8(v + c, v + c + 1)
                    && md_same8(v + c, vup + c)
                    && (udn == NULL || (md_same8(u + c, udn + c) && md_same8(v + c, vdn + c)))) {
                c += 8;  /* flat: no candidates */
                continue;
            }
    #endif
            if (c == 0 || c == cw - 1 || !md_flat_column(c, u, v, uup, vup, udn, vdn, us, vs)) {
                mu = md_column(c, u, v, uup, vup, us, vs, cw, yup, ys, w, far, spots_up, mu);
                if (udn != NULL)
                    md = md_column(c, u, v, udn, vdn, us, vs, cw, ydn, ys, w, far, spots_dn, md);
            }
            c++;
        }
        *n_up = mu;
        *n_dn = md;
    }
    """
    int md_avx2
    void md_cpu_init(int allowed) noexcept nogil
    bint md_flat32(const uint8_t* y0, const uint8_t* y1, const uint8_t* u, const uint8_t* v) noexcept nogil
    uint64_t md_differs(const uint8_t* a, const uint8_t* b, int words) noexcept nogil
    Py_ssize_t md_first_byte(uint64_t x) noexcept nogil
    bint md_flat16(const uint8_t* y0, const uint8_t* y1, const uint8_t* u, const uint8_t* v) noexcept nogil
    void md_edge_candidates(const uint8_t* u, const uint8_t* v, const uint8_t* uup, const uint8_t* vup,
                            const uint8_t* udn, const uint8_t* vdn, Py_ssize_t us, Py_ssize_t vs, Py_ssize_t cw,
                            const uint8_t* yup, const uint8_t* ydn, Py_ssize_t ys, Py_ssize_t w,
                            const uint8_t* far, int32_t* spots_up, Py_ssize_t* n_up,
                            int32_t* spots_dn, Py_ssize_t* n_dn) noexcept nogil


def use_avx2(bint allowed=True) -> bool:
    """Let the flat-run checks use AVX2 where the CPU has it (the default), or not (the SSE2
    path, for tests); returns whether they now do."""
    md_cpu_init(allowed)
    return md_avx2 != 0


use_avx2()


cdef inline void _repair_pixels(Py_ssize_t m, const int32_t* spots, const uint8_t* urow,
                                const uint8_t* vrow, const uint8_t* uside, const uint8_t* vside, Py_ssize_t us,
                                Py_ssize_t vs, Py_ssize_t cw, const uint8_t* yrow, Py_ssize_t ys, label_t* orow,
                                const pal_t* coarse_label, const uint8_t* coarse, const label_t* remap) noexcept nogil:
    """Edge repair of one pixel row, 2:1 horizontal chroma (see map_yuv), given its chroma
    row (urow, vrow), the chroma row on its side (uside, vside) and the positions of its m
    candidates (`spots`, from md_edge_candidates)."""
    cdef Py_ssize_t q, c, j, cn
    for q in range(m):
        j = spots[q]
        c = j >> 1
        cn = c - 1 if (j & 1) == 0 else c + 1
        if cn < 0 or cn >= cw:
            cn = c
        orow[j] = remap[_repair(urow, vrow, uside, vside, us, vs, c, cn, yrow[j * ys], coarse_label, coarse)]


cdef inline Py_ssize_t _side_row(Py_ssize_t k, Py_ssize_t step, Py_ssize_t rows) noexcept nogil:
    """Chroma row k + step, or k itself at the plane's border."""
    return k + step if 0 <= k + step < rows else k


cdef inline int64_t _count_exact(const uint8_t[:, :] u, const uint8_t[:, :] v, const uint8_t* yrow, Py_ssize_t ys,
                                 const label_t* orow, Py_ssize_t w, Py_ssize_t i, int shift_x, int shift_y,
                                 const uint8_t* exact, int ignore) noexcept nogil:
    """The pixels of row i whose own colour key is marked in `exact` and whose label is not `ignore`."""
    cdef Py_ssize_t us = u.strides[1], vs = v.strides[1], j, c
    cdef const uint8_t* urow = &u[i >> shift_y, 0]
    cdef const uint8_t* vrow = &v[i >> shift_y, 0]
    cdef int64_t n = 0
    cdef label_t mark = <label_t>ignore
    for j in range(w):
        c = j >> shift_x
        n += exact[(((<uint32_t>urow[c * us] << 8) | vrow[c * vs]) << 8) | yrow[j * ys]] & (orow[j] != mark)
    return n


cdef int64_t _count_equal(label_t[:, ::1] out, Py_ssize_t row0, Py_ssize_t row1, int value) noexcept nogil:
    cdef Py_ssize_t i, j
    cdef int64_t n = 0
    cdef label_t want = <label_t>value
    for i in range(row0, row1):
        for j in range(out.shape[1]):
            n += out[i, j] == want
    return n


ctypedef fused index_t:
    uint8_t
    uint16_t
    int32_t


def split_instances(const index_t[:, :] colour_index, const int32_t[::1] roi_of, uint8_t[:, :, ::1] planes,
                    int64_t[:, ::1] boxes, int32_t[:, :, ::1] spans, Py_ssize_t row0=0, Py_ssize_t row1=-1):
    """One pass over a colour-index map: for the ROI k = roi_of[index] - 1 of each pixel
    (none when roi_of is 0), set planes[k, i, j] = 1 and grow boxes[k] = (area, x0, y0, x1, y1)
    (exclusive ends; start each row at (0, w, h, 0, 0)).

    spans[k, i] = (x0, x1) bounds the ones of plane k's row i: on entry those of the
    planes' previous contents, which are zeroed first (all zero spans: clean planes),
    on return those just written. Reused planes thus cost what their ROIs cover, not a
    clearing of every plane.

    Only rows row0 <= i < row1 (all by default), so that callers can split a frame across
    threads. Works on runs of equal indices, which masks are made of; 8-bit indices are
    compared 8 at a time."""
    cdef Py_ssize_t h = colour_index.shape[0], w = colour_index.shape[1], n = roi_of.shape[0]
    cdef Py_ssize_t m = planes.shape[0], end = h if row1 < 0 else row1, i, j, start, k, idx
    cdef const uint8_t* row8
    cdef uint64_t word, same
    with nogil:
        for k in range(m):
            for i in range(row0, end):
                if spans[k, i, 1] > spans[k, i, 0]:
                    memset(&planes[k, i, spans[k, i, 0]], 0, spans[k, i, 1] - spans[k, i, 0])
                spans[k, i, 0] = 0
                spans[k, i, 1] = 0
        for i in range(row0, end):
            j = 0
            while j < w:
                idx = colour_index[i, j]
                start = j
                j = j + 1
                if index_t is uint8_t and colour_index.strides[1] == 1:
                    row8 = <const uint8_t*>&colour_index[i, 0]
                    same = <uint64_t>idx * 0x0101010101010101ULL
                    while j + 8 <= w:
                        memcpy(&word, row8 + j, 8)
                        if word != same:
                            break
                        j = j + 8
                while j < w and colour_index[i, j] == idx:
                    j = j + 1
                if idx <= 0 or idx >= n:
                    continue
                k = roi_of[idx] - 1
                if k < 0:
                    continue
                memset(&planes[k, i, start], 1, j - start)
                if spans[k, i, 1] == 0:
                    spans[k, i, 0] = start
                spans[k, i, 1] = j
                boxes[k, 0] += j - start
                if start < boxes[k, 1]:
                    boxes[k, 1] = start
                if i < boxes[k, 2]:
                    boxes[k, 2] = i
                if j > boxes[k, 3]:
                    boxes[k, 3] = j
                boxes[k, 4] = i + 1


cdef inline Py_ssize_t _same_until(const pal_t* row, Py_ssize_t j, Py_ssize_t w) noexcept nogil:
    """The first column k >= j (k < w) whose value differs from row[k - 1], else w; 0 < j.
    Compares 32 bytes at a time against the same bytes one value earlier (runs are long),
    then finds the differing value from the lowest differing byte."""
    cdef uint64_t a, b
    cdef Py_ssize_t step = 8 // sizeof(pal_t), at
    while j + 4 * step <= w and md_differs(<const uint8_t*>(row + j), <const uint8_t*>(row + j - 1), 4) == 0:
        j = j + 4 * step
    while j + step <= w:
        memcpy(&a, row + j, 8)
        memcpy(&b, row + j - 1, 8)
        if a != b:
            at = md_first_byte(a ^ b)
            if at >= 0:
                return j + at // <Py_ssize_t>sizeof(pal_t)
            break
        j = j + step
    while j < w and row[j] == row[j - 1]:
        j = j + 1
    return j


def count_runs(const pal_t[:, ::1] index) -> Py_ssize_t:
    """The number of runs of equal values, row by row (runs never cross rows)."""
    cdef Py_ssize_t h = index.shape[0], w = index.shape[1], i, j, n = 0
    cdef const pal_t* row
    with nogil:
        for i in range(h):
            if w == 0:
                continue
            row = &index[i, 0]
            j = 1
            while True:
                n += 1
                j = _same_until(row, j, w)
                if j >= w:
                    break
                j = j + 1
    return n


cdef inline Py_ssize_t _encode_row(const pal_t* row, Py_ssize_t w, pal_t* values, uint32_t* ends, Py_ssize_t r,
                                   Py_ssize_t room) noexcept nogil:
    """Append the runs of one row (w >= 1 values) to values and ends from r on; the new count, or -1
    when they hold fewer than `room`."""
    cdef Py_ssize_t j = 1
    while True:
        if r >= room:
            return -1
        j = _same_until(row, j, w)
        values[r] = row[j - 1]
        ends[r] = <uint32_t>j
        r += 1
        if j >= w:
            return r
        j = j + 1


cdef Py_ssize_t _encode_runs(const pal_t[:, ::1] index, pal_t* values, uint32_t* ends, int64_t* row_start,
                             Py_ssize_t room) noexcept nogil:
    cdef Py_ssize_t h = index.shape[0], w = index.shape[1], i, r = 0
    for i in range(h):
        row_start[i] = r
        if w == 0:
            continue
        r = _encode_row(&index[i, 0], w, values, ends, r, room)
        if r < 0:
            return -1
    row_start[h] = r
    return r


def encode_runs(const pal_t[:, ::1] index, pal_t[::1] values, uint32_t[::1] ends, int64_t[::1] row_start
                ) -> Py_ssize_t:
    """Run-length code `index` row by row: run r holds values[r] up to column ends[r] (exclusive);
    row i's runs are row_start[i] <= r < row_start[i + 1]. Returns the number of runs, or -1
    (stopping there) when values and ends hold fewer (count_runs gives the number)."""
    cdef Py_ssize_t room = min(values.shape[0], ends.shape[0]), n
    cdef pal_t* vp = &values[0] if values.shape[0] else NULL
    cdef uint32_t* ep = &ends[0] if ends.shape[0] else NULL
    with nogil:
        n = _encode_runs(index, vp, ep, &row_start[0], room)
    return n


def decode_runs(const pal_t[::1] values, const uint32_t[::1] ends, const int64_t[::1] row_start,
                const label_t[::1] remap, label_t[:, ::1] out):
    """out[i, j] = remap[value of the run covering (i, j)]: a run-length index map to labels."""
    cdef Py_ssize_t h = out.shape[0], i, r, j, start
    cdef label_t a
    with nogil:
        for i in range(h):
            start = 0
            for r in range(row_start[i], row_start[i + 1]):
                a = remap[values[r]]
                if label_t is uint8_t:
                    memset(&out[i, start], a, ends[r] - start)
                else:
                    for j in range(start, ends[r]):
                        out[i, j] = a
                start = ends[r]
