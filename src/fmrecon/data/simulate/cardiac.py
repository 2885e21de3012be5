"""The cardiac cine phantom: an analytic 2-D + time torso (chest wall,
subcutaneous fat, lungs with vessels, liver, spine, descending aorta) with a
beating heart whose ventricles contract over the cardiac cycle (the blood
pool shrinks in systole while the myocardium thickens, its area conserved),
in short-axis slices from base to apex or long-axis 2-, 3- and 4-chamber
views. Images are (T, Z, H, W): H runs along the patient's left-right axis
(patient's left at high H), W along anterior-posterior (anterior at low W)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fmrecon.data.simulate.common import (
    CARDIAC_FOV_CM,
    CARDIAC_FRAMES,
    CARDIAC_SIZE,
    CARDIAC_SLICES,
    IMAGE_SCALE,
    LABELS,
    SeedLike,
    _as_rng,
    _grid,
    _smooth_field,
    _smooth_phase,
    _soft_ellipse,
    _soft_halfplane,
)
from fmrecon.errors import ConfigError


def cardiac_curve(phase) -> np.ndarray:
    """Contraction s in [0, 1] over the cardiac cycle (``phase`` in [0, 1),
    0 = end-diastole): fast systole peaking at 35% of the cycle, slower
    diastolic filling."""
    p = np.mod(np.asarray(phase, dtype=float), 1.0)
    return np.where(
        p < 0.35,
        np.sin(0.5 * np.pi * p / 0.35) ** 2,
        np.cos(0.5 * np.pi * (p - 0.35) / 0.65) ** 2,
    )


def sample_cardiac_anatomy(rng: SeedLike = 0) -> dict:
    """Random per-subject anatomy of the cardiac phantom (lengths in cm,
    angles in radians, intensities relative to blood = 1)."""
    rng = _as_rng(rng)
    u = rng.uniform
    return {
        "rotation": u(-0.14, 0.14),
        "shift": (u(-1.2, 1.2), u(-1.0, 1.0)),
        "torso": (u(13.5, 17.0), u(9.5, 11.8)),
        "fat": u(0.7, 2.0),
        "wall": u(1.0, 1.6),
        "heart": (u(1.5, 3.5), u(-2.6, -0.6)),
        "heart_angle": u(-0.35, 0.35),
        "lv_radius": u(2.1, 2.7),
        "lv_wall": u(0.8, 1.1),
        "lv_ef": u(0.5, 0.68),
        "rv_ef": u(0.4, 0.6),
        "rv_size": u(0.9, 1.2),
        "lv_length": u(7.5, 9.0),
        "liver": (u(-8.0, -5.5), u(1.0, 3.5), u(7.5, 10.0), u(5.5, 7.5)),
        "aorta_radius": u(0.9, 1.25),
        "slice_range": (u(0.0, 0.12), u(0.78, 0.92)),
        "vessels": rng.uniform(0, 1, size=(24, 3)),
        "intensity": {
            "blood": u(0.9, 1.1),
            "myocardium": u(0.24, 0.34),
            "fat": u(0.7, 0.95),
            "muscle": u(0.22, 0.32),
            "lung": u(0.02, 0.06),
            "liver": u(0.25, 0.38),
            "bone": u(0.35, 0.5),
            "csf": u(0.7, 0.95),
            "pericardial_fat": u(0.5, 0.8),
            "vessel": u(0.25, 0.45),
        },
    }


class _Canvas:
    """Painter's algorithm on a magnitude image with a label map."""

    def __init__(self, shape):
        self.img = np.zeros(shape)
        self.labels = np.zeros(shape, dtype=np.uint8)

    def paint(self, occ, value, label):
        occ = np.broadcast_to(occ, self.img.shape)
        self.img += occ * (value - self.img)
        self.labels[occ > 0.5] = LABELS[label]


def _paint_torso(canvas, x, y, z, an, pixel, aorta_s):
    """Static torso anatomy of one slice at through-plane position ``z``
    (0 = base, 1 = apex); ``aorta_s`` (T, 1, 1) drives aortic pulsation."""
    it = an["intensity"]
    e = pixel
    at, bt = an["torso"]
    fat = an["fat"]
    wall = an["wall"]
    # body outline and subcutaneous fat, muscle wall, thoracic cavity (lungs)
    canvas.paint(_soft_ellipse(x, y, 0.0, 0.3, at, bt, p=2.4, edge=e), it["fat"], "fat")
    canvas.paint(
        _soft_ellipse(x, y, 0.0, 0.3, at - fat, bt - fat * 0.8, p=2.4, edge=e),
        it["muscle"],
        "muscle",
    )
    ca, cb, ccy = at - fat - wall, bt - fat * 0.8 - wall - 0.6, -0.2
    cavity = _soft_ellipse(x, y, 0.0, ccy, ca, cb, p=2.2, edge=e)
    canvas.paint(cavity, it["lung"], "lung")
    # pulmonary vessels: small bright dots inside the lungs
    for fx, fy, fr in an["vessels"]:
        vx = (fx * 2 - 1) * ca * 0.85
        vy = ccy + (fy * 2 - 1) * cb * 0.8
        canvas.paint(
            _soft_ellipse(x, y, vx, vy, 0.25 + 0.35 * fr, 0.25 + 0.35 * fr, edge=e) * cavity,
            it["vessel"],
            "vessel",
        )
    # liver (right, posterior-inferior): grows towards the apex slices
    lx, ly, la, lb = an["liver"]
    grow = np.clip((z - 0.25) / 0.75, 0.0, 1.0)
    if grow > 0:
        occ = _soft_ellipse(x, y, lx, ly, la * np.sqrt(grow), lb * np.sqrt(grow), 0.3, edge=e)
        canvas.paint(occ * cavity, it["liver"], "liver")
    # spine: vertebral body (marrow, cortical rim), spinal canal (CSF) and cord,
    # paraspinal muscles; sternum anteriorly
    sy = bt - fat * 0.8 - wall - 1.2
    canvas.paint(_soft_ellipse(x, y, -2.3, sy + 2.2, 1.8, 2.4, edge=e), it["muscle"], "muscle")
    canvas.paint(_soft_ellipse(x, y, 2.3, sy + 2.2, 1.8, 2.4, edge=e), it["muscle"], "muscle")
    canvas.paint(_soft_ellipse(x, y, 0.0, sy, 1.8, 1.5, edge=e), it["bone"] * 0.3, "bone")
    canvas.paint(_soft_ellipse(x, y, 0.0, sy, 1.6, 1.3, edge=e), it["bone"], "bone")
    canvas.paint(_soft_ellipse(x, y, 0.0, sy + 2.1, 0.75, 0.7, edge=e), it["csf"], "csf")
    canvas.paint(_soft_ellipse(x, y, 0.0, sy + 2.1, 0.4, 0.4, edge=e), it["muscle"], "muscle")
    canvas.paint(_soft_ellipse(x, y, 0.0, -bt + fat + 0.2, 1.4, 0.6, edge=e), it["bone"], "bone")
    # descending aorta, left-anterior of the spine, pulsating
    ar = an["aorta_radius"] * (1.0 + 0.08 * aorta_s)
    canvas.paint(_soft_ellipse(x, y, 1.9, sy - 2.4, ar + 0.15, ar + 0.15, edge=e), 0.2, "muscle")
    canvas.paint(_soft_ellipse(x, y, 1.9, sy - 2.4, ar, ar, edge=e), it["blood"] * 0.9, "aorta")


def _paint_sax_heart(canvas, x, y, z, an, pixel, s):
    """Short-axis heart at position ``z`` (0 = base, 1 = apex); ``s`` (T, 1, 1)
    is the contraction (0 = end-diastole, 1 = end-systole)."""
    it = an["intensity"]
    e = pixel
    hx, hy = an["heart"]
    ang = an["heart_angle"]
    # the whole heart moves slightly towards the apex (left-anterior) in systole
    cx = hx + 0.3 * s * np.cos(ang)
    cy = hy - 0.2 * s
    taper = np.sqrt(max(1.0 - (0.85 * z) ** 2, 0.08))
    ri0 = an["lv_radius"] * taper
    w0 = an["lv_wall"] * (1.0 - 0.15 * z)
    myo_area = (ri0 + w0) ** 2 - ri0**2
    ri = ri0 * np.sqrt(1.0 - an["lv_ef"] * s)
    ro = np.sqrt(ri**2 + myo_area)
    ro0 = ri0 + w0
    lv = (cx, cy, ro, ro * 0.96, ang)
    # RV: an ellipse on the patient's right-anterior side of the LV, wrapped
    # around it; the LV painted on top of it leaves a crescent
    rv_taper = np.sqrt(max(1.0 - (1.05 * z) ** 2, 0.0))
    rv = None
    if rv_taper > 0.05:
        rv_dir = np.pi + 0.6 + ang  # towards -x (right) and -y (anterior)
        rv_area = np.sqrt(1.0 - an["rv_ef"] * s)
        rb = an["rv_size"] * ro0 * 0.6 * rv_taper * rv_area
        ra = an["rv_size"] * ro0 * 1.2 * rv_taper * (0.5 + 0.5 * rv_area)
        dist = ro0 * 0.6 + rb * 0.5
        rv = (cx + dist * np.cos(rv_dir), cy + dist * np.sin(rv_dir), ra, rb, rv_dir + np.pi / 2)
    # epicardial fat: a thin rim around the ventricles, thicker at the grooves
    fat = _soft_ellipse(x, y, *_grow(lv, 0.3), edge=e)
    if rv is not None:
        fat = np.maximum(fat, _soft_ellipse(x, y, *_grow(rv, 0.75, 0.55), edge=e))
    canvas.paint(fat, it["pericardial_fat"], "pericardial_fat")
    if rv is not None:
        canvas.paint(
            _soft_ellipse(x, y, *_grow(rv, 0.3), edge=e), it["myocardium"], "rv_myocardium"
        )
        canvas.paint(_soft_ellipse(x, y, *rv, edge=e), it["blood"], "rv_blood")
    # LV: myocardium ring thickening as the blood pool shrinks
    canvas.paint(_soft_ellipse(x, y, *lv, edge=e), it["myocardium"], "lv_myocardium")
    canvas.paint(_soft_ellipse(x, y, cx, cy, ri, ri * 0.95, ang, edge=e), it["blood"], "lv_blood")
    # papillary muscles inside the blood pool (basal and mid slices)
    if z < 0.8:
        pr = 0.14 * ri0 * (1.0 + 0.4 * s)
        for pa in (ang + 0.8, ang + 2.2):
            px_ = cx + 0.7 * ri * np.cos(pa)
            py_ = cy + 0.7 * ri * np.sin(pa)
            canvas.paint(
                _soft_ellipse(x, y, px_, py_, pr, pr * 1.3, pa, edge=e),
                it["myocardium"],
                "lv_myocardium",
            )


def _grow(shape, da, db=None):
    """An ellipse tuple (cx, cy, a, b, angle) with semi-axes grown by da, db."""
    cx, cy, a, b, angle = shape
    return cx, cy, a + da, b + (da if db is None else db), angle


def _lax_geometry(view, an, s) -> dict:
    """Ellipses (cx, cy, a, b, angle) of a long-axis view (see
    :func:`_paint_lax_heart`) for contraction ``s``: ``lv_myo``, ``lv_blood``,
    ``la``, and ``ao`` (3-chamber) or ``rv``, ``ra`` (4-chamber), else None;
    the mitral plane centre ``mx, my``, the long ``axis`` angle, its normal
    ``pa, pb`` (towards the right ventricle) and the LV ``radius``."""
    hx, hy = an["heart"]
    # long axis from the base (right-posterior) to the apex (left-anterior)
    axis = -0.55 + an["heart_angle"] + (0.0, 0.15, -0.1)[view]
    ca, sa = np.cos(axis), np.sin(axis)
    # across the heart, towards the right ventricle (patient's right-anterior)
    pa, pb = np.cos(axis - np.pi / 2), np.sin(axis - np.pi / 2)
    L0 = an["lv_length"] * (0.95, 1.0, 1.0)[view]
    R0 = an["lv_radius"] * (1.0, 0.95, 1.05)[view]
    w0 = an["lv_wall"]
    descent = 1.1 * s
    # mitral plane centre, moving towards the apex in systole
    mx = hx - 0.45 * L0 * ca + descent * ca
    my = hy - 0.45 * L0 * sa + descent * sa
    length = L0 - descent - 0.2 * s
    radius = R0 * (1.0 - 0.22 * s)
    myo = np.sqrt(radius**2 + ((R0 + w0) ** 2 - R0**2)) - radius
    g = {"mx": mx, "my": my, "axis": axis, "pa": pa, "pb": pb, "radius": radius}
    g["lv_myo"] = (mx, my, length + myo * 1.2, radius + myo, axis)
    g["lv_blood"] = (mx, my, length, radius, axis)
    # atria behind the mitral (and tricuspid) plane; they fill in systole
    la_len = 2.2 + 0.5 * s
    la_w = 2.1 + 0.15 * s
    shift = -0.4 * R0 if view == 2 else 0.0
    back = la_len - 0.2
    g["la"] = (mx - back * ca + shift * pa, my - back * sa + shift * pb, la_len, la_w, axis)
    g["ao"] = g["rv"] = g["ra"] = None
    if view == 1:  # outflow tract and aortic root towards the base, on the septal side
        ao_axis = axis + np.pi - 0.8
        ao_x = mx + 0.55 * R0 * pa + 2.0 * np.cos(ao_axis)
        g["ao"] = (ao_x, my + 0.55 * R0 * pb + 2.0 * np.sin(ao_axis), 2.6, 1.2, ao_axis)
    if view == 2:  # right heart beside the septum
        off = R0 + w0 + 0.3 + 1.5 * an["rv_size"]
        rvx, rvy = mx + off * pa, my + off * pb
        rv_w = 1.5 * an["rv_size"] * np.sqrt(1.0 - an["rv_ef"] * s)
        g["rv"] = (rvx, rvy, 0.75 * L0 * (1.0 - 0.15 * s), rv_w, axis)
        g["ra"] = (rvx - back * ca, rvy - back * sa, la_len, la_w - 0.2, axis)
    return g


def _paint_lax_heart(canvas, x, y, view, an, pixel, s):
    """Long-axis heart: view 0 = 2-chamber (LV, LA), 1 = 3-chamber (LV, LA,
    outflow tract and aortic root), 2 = 4-chamber (LV, RV, LA, RA). The mitral
    plane descends towards the apex in systole and the atria fill."""
    it = an["intensity"]
    e = pixel
    g = _lax_geometry(view, an, s)
    la, ao, rv, ra_, axis = g["la"], g["ao"], g["rv"], g["ra"], g["axis"]
    others = [_grow(la, 0.25)]
    if ao is not None:
        others.append(_grow(ao, 0.25))
    if rv is not None:
        others += [_grow(rv, 0.3), _grow(ra_, 0.25)]
    lv_half = _soft_halfplane(x, y, g["mx"], g["my"], axis, edge=e)
    fat = _soft_ellipse(x, y, *_grow(g["lv_myo"], 0.35), edge=e) * lv_half
    for shape in others:
        fat = np.maximum(fat, _soft_ellipse(x, y, *_grow(shape, 0.35), edge=e))
    canvas.paint(fat, it["pericardial_fat"], "pericardial_fat")
    canvas.paint(_soft_ellipse(x, y, *_grow(la, 0.25), edge=e), it["myocardium"], "atrium")
    canvas.paint(_soft_ellipse(x, y, *la, edge=e), it["blood"], "atrium")
    if ao is not None:
        canvas.paint(_soft_ellipse(x, y, *_grow(ao, 0.25), edge=e), it["myocardium"], "muscle")
        canvas.paint(_soft_ellipse(x, y, *ao, edge=e), it["blood"], "aorta")
    if rv is not None:
        rv_half = _soft_halfplane(x, y, rv[0], rv[1], axis, edge=e)
        canvas.paint(_soft_ellipse(x, y, *_grow(ra_, 0.25), edge=e), it["myocardium"], "atrium")
        canvas.paint(_soft_ellipse(x, y, *ra_, edge=e), it["blood"], "atrium")
        rv_myo = _soft_ellipse(x, y, *_grow(rv, 0.3), edge=e) * rv_half
        canvas.paint(rv_myo, it["myocardium"], "rv_myocardium")
        canvas.paint(_soft_ellipse(x, y, *rv, edge=e) * rv_half, it["blood"], "rv_blood")
    # LV: half prolate ellipse from the mitral plane to the apex
    lv_myo = _soft_ellipse(x, y, *g["lv_myo"], edge=e) * lv_half
    canvas.paint(lv_myo, it["myocardium"], "lv_myocardium")
    canvas.paint(_soft_ellipse(x, y, *g["lv_blood"], edge=e) * lv_half, it["blood"], "lv_blood")
    _paint_mitral_leaflets(canvas, x, y, g, it, e, s)


def _paint_mitral_leaflets(canvas, x, y, g, it, e, s):
    """Thin dark bars hinged at the mitral annulus, open in diastole."""
    radius = g["radius"]
    gap = radius * (0.8 - 0.65 * s)
    leaf = np.maximum((radius - gap) / 2, 0.1)
    for sign in (-1.0, 1.0):
        off = sign * (gap + (radius - gap) / 2)
        cx, cy = g["mx"] + off * g["pa"], g["my"] + off * g["pb"]
        canvas.paint(
            _soft_ellipse(x, y, cx, cy, 0.18, leaf, g["axis"], edge=e),
            it["myocardium"],
            "lv_myocardium",
        )


def cardiac_phantom(
    size: Sequence[int] = CARDIAC_SIZE,
    n_slices: int = CARDIAC_SLICES,
    n_frames: int = CARDIAC_FRAMES,
    seed: SeedLike = 0,
    *,
    view: str = "sax",
    anatomy: dict | None = None,
    scale: float = IMAGE_SCALE,
    texture: bool = True,
    phase: bool = True,
    return_labels: bool = False,
):
    """Complex cine images (T, Z, H, W) complex64 of one simulated subject.

    ``view`` "sax": ``n_slices`` short-axis slices from base to apex; "lax":
    long-axis views (slice k = 2-, 3-, 4-chamber, cycling). Blood magnitude is
    about ``scale``. ``anatomy`` (from :func:`sample_cardiac_anatomy`) defaults
    to one drawn from ``seed``. With ``return_labels`` also returns the tissue
    label map (T, Z, H, W) uint8 (see :data:`LABELS`).
    """
    h, w = (int(s) for s in size)
    rng = _as_rng(seed)
    an = sample_cardiac_anatomy(rng) if anatomy is None else anatomy
    pixel = CARDIAC_FOV_CM / h
    x0, y0 = _grid(h, w, pixel)
    # subject pose: rotate and shift the whole body
    c, s_ = np.cos(an["rotation"]), np.sin(an["rotation"])
    dx, dy = x0 - an["shift"][0], y0 - an["shift"][1]
    x = (dx * c + dy * s_)[None]
    y = (-dx * s_ + dy * c)[None]
    t = np.arange(n_frames) / n_frames
    s = cardiac_curve(t)[:, None, None]
    z_lo, z_hi = an["slice_range"]
    zs = np.linspace(z_lo, z_hi, n_slices) if n_slices > 1 else np.array([0.45])
    mag = np.zeros((n_frames, n_slices, h, w))
    labels = np.zeros((n_frames, n_slices, h, w), dtype=np.uint8)
    for k in range(n_slices):
        canvas = _Canvas((n_frames, h, w))
        if view == "sax":
            _paint_torso(canvas, x, y, zs[k], an, pixel, s)
            _paint_sax_heart(canvas, x, y, zs[k], an, pixel, s)
        elif view == "lax":
            _paint_torso(canvas, x, y, 0.45, an, pixel, s)
            _paint_lax_heart(canvas, x, y, k % 3, an, pixel, s)
        else:
            raise ConfigError(f"unknown cardiac view '{view}' (expected sax or lax)")
        mag[:, k] = canvas.img
        labels[:, k] = canvas.labels
    if texture:
        tex = 1.0 + 0.07 * _smooth_field(rng, (n_slices, h, w), corr=3.0 / pixel)
        tex *= 1.0 + 0.04 * _smooth_field(rng, (n_slices, h, w), corr=0.5 / pixel)
        mag *= tex[None]
    img = mag * scale
    if phase:
        img = img * np.exp(1j * _smooth_phase(rng, (n_slices, h, w)))[None]
    img = img.astype(np.complex64)
    return (img, labels) if return_labels else img
