"""The built-in lung-ultrasound phantom: physics-inspired grey 8-bit LUS frames, two classes.

No patient data can ship and nothing can be downloaded, so the demo and the tests render their
own frames. Each frame is built the way a scanner forms one, in polar (depth, angle) coordinates:

1. an echogenicity map (mean backscatter amplitude) of the scene: soft-tissue layers, the pleural
   line, ribs with acoustic shadows, and either aerated lung (A-line reverberations at multiples
   of the pleural depth, sometimes a B-line) or a consolidation (hypo-echoic "hepatised" tissue
   under the pleura, dotted/branching air bronchograms, a ragged bright deep border - the "shred
   sign" - and B-lines);
2. Rayleigh speckle: complex Gaussian scatterers weighted by the map and smoothed by an
   anisotropic point-spread function (short axially, wide laterally), plus coherent specular
   echoes for the pleura, A- and B-lines;
3. depth attenuation, receiver noise, time-gain compensation with a per-patient residual error,
   envelope detection and log compression to the patient's dynamic range and gain;
4. scan conversion of the convex-probe sector onto a non-square scanner-sized image with
   :func:`scipy.ndimage.map_coordinates`; pixels outside the fan are 0.

Acquisition settings (depth, gain, dynamic range, noise, sector angle, probe radius, pleura
depth, tissue layering) are drawn per patient, scene content per clip, and within a clip the
speckle decorrelates only partially, the lung slides and the patient breathes - so frames of one
patient look more alike than frames of two patients and patient-level splitting matters.

Class cues are learnable but not trivial: gains vary so mean brightness alone does not separate
the classes, some consolidations are small, some normal clips show one or two B-lines.

Everything is deterministic from ``PhantomParams.seed``: patient ``p`` draws its settings from
``SeedSequence(seed, spawn_key=(p, 0))`` and clip ``c`` from ``spawn_key=(p, c + 1)``, so adding
patients or clips never changes the earlier ones. This module is pure (numpy/scipy, no IO);
:mod:`lusynth.data.phantom_files` writes datasets.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.special import expit

from lusynth.params import check

CONSOLIDATION = "consolidation"
NO_CONSOLIDATION = "no_consolidation"
#: class names; index 1 is the positive class (consolidation)
CLASSES: tuple[str, ...] = (NO_CONSOLIDATION, CONSOLIDATION)
#: clip containers the dataset writer knows
FORMATS: tuple[str, ...] = ("png", "mp4", "gif")

# polar sampling of the beamformed data: ~0.4 mm axially at 10 cm depth, ~0.45 deg laterally;
# fixed (not a parameter) so the speckle statistics do not depend on the output size
_N_DEPTH = 256
_N_ANGLE = 160
_MARGIN_PX = 4  # black border around the fan, as on scanner exports


@dataclass(frozen=True)
class PhantomParams:
    """Parameters of the phantom dataset; the defaults are the ``demo`` profile."""

    seed: int = 0
    patients: int = 24  # patients alternate class: even index no_consolidation, odd consolidation
    clips_per_patient: int = 2
    frames_per_clip: int = 8
    width: int = 320  # scanner-like non-square export size; ingest crops/pads/resizes later
    height: int = 288
    formats: tuple[str, ...] = FORMATS  # container per clip, cycled over clips: png folder, mp4, gif
    fps: float = 10.0  # frame rate written into mp4/gif clips
    small_consolidation_rate: float = 0.35  # share of consolidation clips with a small (< ~1.2 cm) lesion
    normal_b_line_rate: float = 0.3  # share of normal clips with 1-2 B-lines (normal lungs can have some)
    rib_rate: float = 0.5  # share of clips with a rib and its acoustic shadow at a sector edge
    # how far the class signs vary between patients (a patient random effect, docs/phantom.md):
    # 0 = textbook signs in every patient; 1 = consolidation signs from florid to absent and normal
    # lungs with mimics, so even a perfect reader stays near patient-level AUC 0.7
    difficulty: float = 0.8

    def __post_init__(self) -> None:
        ph = "phantom"
        for name in ("patients", "clips_per_patient", "frames_per_clip"):
            value = getattr(self, name)
            check(isinstance(value, int) and value >= 1, ph, name, value, "must be an integer >= 1")
        check(isinstance(self.seed, int) and self.seed >= 0, ph, "seed", self.seed, "must be an integer >= 0")
        for name in ("width", "height"):
            value = getattr(self, name)
            check(isinstance(value, int) and 64 <= value <= 2048, ph, name, value, "must be an integer between 64 and 2048 pixels")
        formats = tuple(self.formats)
        check(len(formats) > 0, ph, "formats", self.formats, f"give at least one of {', '.join(FORMATS)}")
        bad = [f for f in formats if f not in FORMATS]
        check(not bad, ph, "formats", self.formats, f"unknown container(s) {', '.join(map(repr, bad))}; choose from {', '.join(FORMATS)}")
        object.__setattr__(self, "formats", formats)
        check("mp4" not in formats or (self.width % 2 == 0 and self.height % 2 == 0), ph, "width", f"{self.width}x{self.height}",
              "mp4 (yuv420p) needs even sizes; use even numbers or drop mp4 from formats")
        check(0 < self.fps <= 120, ph, "fps", self.fps, "must be in (0, 120]")
        for name in ("small_consolidation_rate", "normal_b_line_rate", "rib_rate", "difficulty"):
            value = getattr(self, name)
            check(0.0 <= value <= 1.0, ph, name, value, "must be a probability in [0, 1]")


@dataclass(frozen=True)
class Acquisition:
    """Per-patient scanner settings and anatomy (drawn once per patient)."""

    depth_cm: float  # imaging depth
    pleura_cm: float  # skin-to-pleura distance
    sector_deg: float  # full opening angle of the convex probe
    probe_radius_cm: float  # curvature radius of the probe face
    gain_db: float
    dynamic_range_db: float
    noise_db: float  # receiver noise as displayed at full depth, relative to the pleural echo
    attenuation_db_cm: float  # round-trip attenuation compensated by the TGC
    tgc_error_db_cm: float  # residual of the TGC: > 0 brightens with depth
    psf_axial: float  # PSF sigma in depth samples
    psf_lateral: float  # PSF sigma in angle samples
    tissue_db: float  # soft tissue echogenicity
    lung_db: float  # aerated-lung reverberation haze
    a_line_db: float  # first A-line strength in normal lung
    fascia: tuple[tuple[float, float], ...]  # (depth as a fraction of pleura depth, level dB)


@dataclass(frozen=True)
class ClipScene:
    """Per-clip ground truth behind the frames (probe position, pathology, motion)."""

    label: str
    sign: float  # strength of the consolidation signs (1 = textbook consolidation, 0 = none): the patient's random effect
    pleura_cm: float  # pleura depth in this clip (the patient's, moved by probe placement)
    b_lines: tuple[float, ...]  # B-line angles (radians)
    consolidation: tuple[float, float, float] | None  # (centre angle rad, half-span rad, max depth cm)
    rib: int  # -1 left edge, +1 right edge, 0 none
    breath_cm: float  # breathing amplitude (depth)
    breath_phase: float
    breath_period: float  # frames
    slide_rad: float  # lung-sliding amplitude (angle)


def _rng(params: PhantomParams, *key: int) -> np.random.Generator:
    # spawn_key gives the same stream as SeedSequence(seed).spawn(...)[...] would, but addressed
    # directly, so patient p never depends on how many patients come before or after it
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(params.seed, spawn_key=key)))


def patient_label(patient: int) -> str:
    """Class of a patient: classes alternate so any prefix of patients is balanced."""
    return CLASSES[patient % 2]


def patient_id(patient: int) -> str:
    """Export-style patient id of patient index ``patient`` (0-based): ``PAT-0001``, ..."""
    return f"PAT-{patient + 1:04d}"


def video_id(patient: int, clip: int) -> str:
    """Export-style clip id, unique across patients: ``PAT-0001-V01``."""
    return f"{patient_id(patient)}-V{clip + 1:02d}"


def acquisition(params: PhantomParams, patient: int) -> Acquisition:
    """The scanner settings and anatomy of patient ``patient`` (0-based), deterministic."""
    _check_index(params, patient=patient)
    g = _rng(params, patient, 0)
    pleura = g.uniform(0.9, 2.3)
    n_fascia = int(g.integers(1, 4))
    fascia = tuple(
        (float(f), float(g.uniform(-17.0, -11.0))) for f in np.sort(g.uniform(0.15, 0.8, n_fascia))
    )
    return Acquisition(
        depth_cm=float(g.uniform(8.0, 13.0)),
        pleura_cm=float(pleura),
        sector_deg=float(g.uniform(48.0, 64.0)),
        probe_radius_cm=float(g.uniform(2.5, 5.0)),
        gain_db=float(g.uniform(-7.0, 7.0)),
        dynamic_range_db=float(g.uniform(42.0, 56.0)),
        noise_db=float(g.uniform(-44.0, -34.0)),
        attenuation_db_cm=float(g.uniform(2.5, 4.0)),
        tgc_error_db_cm=float(g.uniform(-1.0, 0.4)),
        psf_axial=float(g.uniform(0.7, 1.1)),
        psf_lateral=float(g.uniform(1.3, 2.2)),
        tissue_db=float(g.uniform(-25.0, -20.0)),
        lung_db=float(g.uniform(-27.0, -22.0)),
        a_line_db=float(g.uniform(-7.0, -3.0)),
        fascia=fascia,
    )


#: at difficulty 1 a normal patient's mimic strength is uniform on [0, MIMIC_MAX]
MIMIC_MAX = 0.6


def sign_strength(params: PhantomParams, patient: int) -> float:
    """How strongly patient ``patient`` shows consolidation signs: its random effect, the same in all its clips.

    A consolidation patient shows ``1 - difficulty * u`` and a normal one ``difficulty * MIMIC_MAX * v``
    (``u``, ``v`` uniform on [0, 1], drawn per patient from their own stream, so the scene draws do
    not move). At difficulty 0 every patient is textbook (1 or 0); at 1 the two ranges overlap and a
    reader that knew the strength exactly would reach patient-level AUC ``1 - MIMIC_MAX / 2`` = 0.7.
    """
    _check_index(params, patient=patient)
    u = float(_rng(params, patient, 0, 1).random())
    d = params.difficulty
    return 1.0 - d * u if patient_label(patient) == CONSOLIDATION else d * MIMIC_MAX * u


def clip_scene(params: PhantomParams, *, patient: int, clip: int) -> ClipScene:
    """The scene behind clip ``clip`` of patient ``patient``: label, pathology, motion."""
    _check_index(params, patient=patient, clip=clip)
    acq = acquisition(params, patient)
    g = _rng(params, patient, clip + 1)
    label = patient_label(patient)
    half = math.radians(acq.sector_deg) / 2
    pleura = acq.pleura_cm * g.uniform(0.93, 1.07)
    rib = int(g.choice([-1, 1])) if g.random() < params.rib_rate else 0
    # keep pathology away from the rib shadow so it stays visible
    lo, hi = -0.8 * half + (0.35 * half if rib == -1 else 0), 0.8 * half - (0.35 * half if rib == 1 else 0)
    consolidation = None
    if label == CONSOLIDATION:
        n_b = int(g.integers(1, 4))
        if g.random() < params.small_consolidation_rate:
            span, depth = g.uniform(0.08, 0.16) * half, g.uniform(0.5, 1.2)
        else:
            span, depth = g.uniform(0.25, 0.5) * half, g.uniform(1.5, min(4.5, 0.5 * acq.depth_cm))
        centre = g.uniform(lo + span, hi - span) if hi - lo > 2 * span else 0.5 * (lo + hi)
        consolidation = (float(centre), float(span), float(depth))
    else:
        n_b = int(g.integers(1, 3)) if g.random() < params.normal_b_line_rate else 0
    b_lines = tuple(float(a) for a in g.uniform(lo, hi, n_b))
    return ClipScene(
        label=label,
        sign=sign_strength(params, patient),
        pleura_cm=float(pleura),
        b_lines=b_lines,
        consolidation=consolidation,
        rib=rib,
        breath_cm=float(g.uniform(0.03, 0.12)),
        breath_phase=float(g.uniform(0, 2 * math.pi)),
        breath_period=float(g.uniform(10.0, 24.0)),
        slide_rad=float(math.radians(g.uniform(0.3, 1.0))),
    )


def _check_index(params: PhantomParams, *, patient: int, clip: int | None = None) -> None:
    if not 0 <= patient < params.patients:
        raise ValueError(f"patient={patient}: must be in [0, {params.patients}) for patients={params.patients}")
    if clip is not None and not 0 <= clip < params.clips_per_patient:
        raise ValueError(
            f"clip={clip}: must be in [0, {params.clips_per_patient}) for clips_per_patient={params.clips_per_patient}"
        )


# --------------------------------------------------------------------------------------------
# geometry


@dataclass(frozen=True)
class _Fan:
    depth_cm: np.ndarray  # (H, W) depth below the probe face; NaN outside the fan
    coords: np.ndarray  # (2, H, W) polar sample coordinates for map_coordinates
    inside: np.ndarray  # (H, W) bool fan mask


def _fan(params: PhantomParams, acq: Acquisition) -> _Fan:
    half = math.radians(acq.sector_deg) / 2
    r0, d = acq.probe_radius_cm, acq.depth_cm
    # scale: the whole sector fits inside the image, as a scanner sizes its display
    extent_y = r0 + d - r0 * math.cos(half)
    extent_x = 2 * (r0 + d) * math.sin(half)
    s = min((params.height - 2 * _MARGIN_PX) / extent_y, (params.width - 2 * _MARGIN_PX) / extent_x)  # px/cm
    y_apex = _MARGIN_PX - r0 * math.cos(half) * s
    x_apex = (params.width - 1) / 2
    yy, xx = np.mgrid[0 : params.height, 0 : params.width].astype(np.float64)
    dx, dy = (xx - x_apex) / s, (yy - y_apex) / s
    depth = np.hypot(dx, dy) - r0
    angle = np.arctan2(dx, dy)
    inside = (depth >= 0) & (depth <= d) & (np.abs(angle) <= half)
    coords = np.stack([depth / d * (_N_DEPTH - 1), (angle + half) / (2 * half) * (_N_ANGLE - 1)])
    return _Fan(depth_cm=np.where(inside, depth, np.nan), coords=coords, inside=inside)


def pixel_depth_cm(params: PhantomParams, patient: int) -> np.ndarray:
    """(H, W) depth below the probe face of every pixel of ``patient``'s frames, NaN outside the fan."""
    _check_index(params, patient=patient)
    return _fan(params, acquisition(params, patient)).depth_cm


# --------------------------------------------------------------------------------------------
# scene -> echogenicity


def _db(level: float | np.ndarray) -> np.ndarray:
    level = np.asarray(level, dtype=np.float32)
    return np.exp(level * np.float32(math.log(10) / 20))


def _smooth_noise(g: np.random.Generator, n: int, sigma: float) -> np.ndarray:
    """Unit-variance 1-D noise correlated over ``sigma`` samples (for irregular borders)."""
    x = ndimage.gaussian_filter1d(g.standard_normal(n + 8 * int(sigma) + 8), sigma, mode="wrap")
    x = x[: n + 4 * int(sigma) + 4]
    return (x - x.mean()) / (x.std() + 1e-12)


@dataclass(frozen=True)
class _ClipStatic:
    """Random structure of a clip drawn once; frames move it (breathing, sliding)."""

    pleura_rough: np.ndarray  # irregularity of the pleura over a wide angle grid (cm)
    pleura_gap: np.ndarray  # pleural brightness modulation (dB), fragmented in consolidation
    haze_streaks: np.ndarray  # lateral modulation of the lung haze (dB)
    shred: np.ndarray  # ragged deep border of the consolidation (relative)
    bronchi_r: np.ndarray  # air-bronchogram points: depth below the pleura (cm)
    bronchi_a: np.ndarray  # and angle (rad)
    bronchi_w: np.ndarray  # and brightness
    layer_wobble: np.ndarray  # lateral waviness of fascia lines (cm)


_WIDE = 3 * _N_ANGLE  # angle grid wider than the sector so sliding can shift texture in


def _clip_static(g: np.random.Generator, acq: Acquisition, scene: ClipScene) -> _ClipStatic:
    rough = 0.02 * _smooth_noise(g, _WIDE, 6.0)[:_WIDE] + 0.008 * _smooth_noise(g, _WIDE, 1.5)[:_WIDE]
    # an inflamed pleura is thickened, irregular and fragmented, as far as the patient shows signs
    # (sign 1: x2.5 roughness, x2 fragmentation; sign 0: a healthy pleura)
    rough = rough * (1.0 + 1.5 * scene.sign)
    gap = -3.0 * np.abs(_smooth_noise(g, _WIDE, 4.0)[:_WIDE])
    gap = gap * (1.0 + scene.sign)
    streaks = 3.0 * _smooth_noise(g, _WIDE, 10.0)[:_WIDE]
    shred = _smooth_noise(g, _WIDE, 1.2)[:_WIDE]
    br: list[float] = []
    ba: list[float] = []
    bw: list[float] = []
    if scene.consolidation is not None:
        centre, span, depth = scene.consolidation
        # branching air bronchograms: random walks from near the pleura diving into the lesion
        n_trees = max(1, int(round(span / math.radians(4.0))))
        step = 0.03  # cm
        for _ in range(n_trees):
            stack = [(g.uniform(0.1, 0.4) * depth, centre + g.uniform(-0.7, 0.7) * span, g.uniform(-0.4, 0.4))]
            while stack and len(br) < 600:
                r, a, heading = stack.pop()
                for _ in range(int(g.integers(6, 22))):
                    heading += g.normal(0, 0.25)
                    r += step * math.cos(heading)
                    a += step * math.sin(heading) / (acq.probe_radius_cm + acq.pleura_cm + r)
                    if r > 0.85 * depth or abs(a - centre) > span:
                        break
                    if g.random() < 0.3:  # dotted, not continuous
                        br.append(r)
                        ba.append(a)
                        bw.append(g.uniform(0.5, 1.0))
                    if g.random() < 0.06 and len(stack) < 4:  # branch
                        stack.append((r, a, heading + g.choice([-1, 1]) * g.uniform(0.4, 0.9)))
        n_dots = int(g.integers(3, 12))  # isolated punctate bronchograms
        br += list(g.uniform(0.1, 0.8, n_dots) * depth)
        ba += list(centre + g.uniform(-0.8, 0.8, n_dots) * span)
        bw += list(g.uniform(0.5, 1.0, n_dots))
    wobble = 0.03 * _smooth_noise(g, _WIDE, 12.0)[:_WIDE]
    return _ClipStatic(
        pleura_rough=rough,
        pleura_gap=gap,
        haze_streaks=streaks,
        shred=shred,
        bronchi_r=np.asarray(br, dtype=np.float64),
        bronchi_a=np.asarray(ba, dtype=np.float64),
        bronchi_w=np.asarray(bw, dtype=np.float64),
        layer_wobble=wobble,
    )


def _wide(values: np.ndarray, angle: np.ndarray, half: float, shift: float) -> np.ndarray:
    """Sample a texture defined on the wide angle grid at ``angle - shift`` (sliding)."""
    pos = (angle - shift + 1.5 * 2 * half) / (3 * 2 * half) * (_WIDE - 1)
    return np.interp(pos, np.arange(_WIDE), values).astype(np.float32)


def _echo_maps(
    acq: Acquisition, scene: ClipScene, static: _ClipStatic, t: int
) -> tuple[np.ndarray, np.ndarray]:
    """Diffuse (speckle-forming) and coherent (specular) amplitude maps, shape (N_DEPTH, N_ANGLE)."""
    half = math.radians(acq.sector_deg) / 2
    # float32 throughout: half the memory traffic, and SIMD exp/log, for the per-frame maps
    r = np.linspace(0.0, acq.depth_cm, _N_DEPTH, dtype=np.float32)[:, None]
    a = np.linspace(-half, half, _N_ANGLE, dtype=np.float32)
    dr = acq.depth_cm / (_N_DEPTH - 1)
    da = 2 * half / (_N_ANGLE - 1)
    breath = scene.breath_cm * math.sin(2 * math.pi * t / scene.breath_period + scene.breath_phase)
    slide = scene.slide_rad * math.sin(2 * math.pi * t / scene.breath_period + scene.breath_phase + 0.7)

    # pleura depth per angle: the clip's depth, breathing, and an irregular surface that slides
    rp = scene.pleura_cm + breath + _wide(static.pleura_rough, a, half, slide)[None, :]
    below = expit((r - rp) / 0.04)  # smooth 0 above -> 1 below the pleura

    # soft tissue above the pleura: speckle with fascia lines that breathe a little
    tissue = np.full_like(r * a[None, :], acq.tissue_db)
    wob = _wide(static.layer_wobble, a, half, 0.0)[None, :]
    for frac, level in acq.fascia:
        dep = frac * scene.pleura_cm + frac * breath + wob
        tissue = np.maximum(tissue, level - ((r - dep) / 0.05) ** 2)
    tissue = tissue + 6.0 * np.exp(-r / 0.15)  # near-field ring-down below the probe face
    diffuse = _db(tissue) * (1 - below)
    coherent = np.zeros_like(diffuse)

    # pleural line: bright specular echo, fragmented where the pleura is diseased
    pleura_db = _wide(static.pleura_gap, a, half, slide)[None, :]
    coherent += 0.9 * _db(pleura_db) * np.exp(-(((r - rp) / 0.05) ** 2))
    diffuse += 0.4 * _db(pleura_db) * np.exp(-(((r - rp) / 0.08) ** 2))

    # aerated lung: reverberation haze streaked laterally, fading with depth
    haze_db = acq.lung_db + _wide(static.haze_streaks, a, half, slide)[None, :] - 1.2 * np.maximum(r - rp, 0)
    lung = _db(haze_db) * below

    # A-lines: reverberations between probe and pleura, at multiples of the pleural depth
    # A-lines fade where the lung loses air: by 14 dB with textbook signs, less with weaker ones
    a_level = acq.a_line_db - 14.0 * scene.sign
    alines = np.zeros_like(diffuse)
    for k in range(2, 12):
        depth_k = k * (scene.pleura_cm + breath)
        if depth_k > acq.depth_cm + 0.2:
            break
        alines += _db(a_level - 6.0 * (k - 2)) * np.exp(-(((r - depth_k) / (0.05 + 0.015 * k)) ** 2))

    # B-lines: laser-like vertical comet tails from the pleura to the bottom; they erase A-lines
    bcol = np.zeros_like(a)
    for ang in scene.b_lines:
        bcol = np.maximum(bcol, np.exp(-0.5 * ((a - ang - slide) / math.radians(0.9)) ** 2))
    bcol = bcol[None, :]

    lesion = np.zeros_like(diffuse)
    border = np.zeros_like(diffuse)
    if scene.consolidation is not None:
        centre, span, depth = scene.consolidation
        u = (a - centre - 0.3 * slide) / span
        dome = np.sqrt(np.clip(1 - u**2, 0, None))
        shred = _wide(static.shred, a, half, 0.3 * slide)
        # ragged deep border: the "shred sign"
        deep = depth * dome * (0.75 + 0.25 * np.clip(1 + 0.6 * shred, 0, 2))
        deep = deep[None, :]
        inside = below * (expit((rp + deep - r) / 0.05)) * (dome[None, :] > 0)
        # a weak-sign patient's lesion is only partly hepatised: it fades into the aerated lung
        lesion = inside * scene.sign
        border = np.exp(-(((r - rp - deep) / 0.06) ** 2)) * (dome[None, :] > 0.05) * np.clip(0.6 + 0.5 * shred, 0, 1.2)[None, :]
        border = border * scene.sign
        # B-lines start at the lesion's border, not above it
        bcol = bcol * (1 - inside)

    lung_all = lung * (1 - lesion) + _db(acq.tissue_db - 7.0) * lesion  # hepatised lung: hypo-echoic tissue
    diffuse += lung_all + 0.35 * border
    coherent += alines * below * (1 - bcol) * (1 - lesion)
    coherent += 0.25 * border
    bline = _db(-9.0 - 0.5 * np.maximum(r - rp, 0)) * bcol * below
    coherent += 0.6 * bline
    diffuse += 0.5 * bline

    if static.bronchi_r.size:
        rr = (static.bronchi_r + scene.pleura_cm + breath) / dr
        aa = (static.bronchi_a + 0.3 * slide + half) / da
        ok = (rr >= 0) & (rr < _N_DEPTH) & (aa >= 0) & (aa < _N_ANGLE)
        dots = np.zeros_like(diffuse)
        np.add.at(dots, (rr[ok].astype(int), aa[ok].astype(int)), static.bronchi_w[ok])
        dots = ndimage.gaussian_filter(dots, (0.8, 0.6))
        coherent += _db(-9.0) * np.clip(dots / 0.25, 0, 1.2) * lesion

    if scene.rib:
        # rib cortex just above the pleura at one sector edge, with a black acoustic shadow below
        edge = -half if scene.rib == -1 else half
        width = 0.28 * half
        w = expit((width - np.abs(a - edge)) / math.radians(0.6))
        rib_depth = scene.pleura_cm - 0.35 + breath
        cortex = np.exp(-(((r - rib_depth) / 0.07) ** 2))
        shadow = expit((r - rib_depth - 0.08) / 0.03)
        keep = 1 - w[None, :] * shadow
        diffuse = diffuse * keep + 0.3 * _db(-3.0) * cortex * w[None, :]
        coherent = coherent * keep + 0.7 * _db(-3.0) * cortex * w[None, :]
    return diffuse, coherent


# --------------------------------------------------------------------------------------------
# speckle, receiver and display


def render_clip(params: PhantomParams, *, patient: int, clip: int) -> tuple[np.ndarray, str]:
    """(T, H, W) uint8 frames of one clip and its label; deterministic for the same params."""
    acq = acquisition(params, patient)
    scene = clip_scene(params, patient=patient, clip=clip)
    g = _rng(params, patient, clip + 1, 1)  # separate stream from the scene draws
    static = _clip_static(g, acq, scene)
    fan = _fan(params, acq)
    coords = fan.coords[:, fan.inside]  # only pixels inside the sector are interpolated

    r = np.linspace(0.0, acq.depth_cm, _N_DEPTH, dtype=np.float32)[:, None]
    # receive chain: tissue attenuates, noise enters at the receiver, the TGC undoes attenuation
    # (imperfectly), so noise grows with depth as on a real scanner
    atten = _db(-acq.attenuation_db_cm * r)
    tgc = _db((acq.attenuation_db_cm + acq.tgc_error_db_cm) * r)
    noise_amp = float(_db(acq.noise_db - (acq.attenuation_db_cm + acq.tgc_error_db_cm) * acq.depth_cm))
    psf = (acq.psf_axial, acq.psf_lateral)
    # white-noise filtered by a Gaussian PSF loses power 4*pi*sx*sy; restore unit mean power
    psf_gain = math.sqrt(4 * math.pi * acq.psf_axial * acq.psf_lateral)
    # speckle decorrelation per frame: tissue above the pleura barely moves, lung slides
    below0 = (r > scene.pleura_cm).astype(np.float32)
    rho = (0.92 - 0.35 * below0).astype(np.float32)  # (N_DEPTH, 1)
    innov = np.sqrt(1 - rho**2)
    top = 1.0 - acq.gain_db  # dB mapped to white

    def cnoise() -> np.ndarray:
        # circular complex Gaussian with unit power; drawn as float32 pairs viewed as complex64
        z = g.standard_normal((_N_DEPTH, 2 * _N_ANGLE), dtype=np.float32).view(np.complex64)
        return z * np.float32(1 / math.sqrt(2))

    scat = cnoise()
    frames = np.empty((params.frames_per_clip, params.height, params.width), dtype=np.uint8)
    for t in range(params.frames_per_clip):
        if t:
            scat = rho * scat + innov * cnoise()
        diffuse, coherent = _echo_maps(acq, scene, static, t)
        rf = ndimage.gaussian_filter(diffuse * scat, psf, mode="nearest") * psf_gain
        # specular echoes keep a little speckle modulation so they are not cartoon-smooth
        rf += coherent * (0.85 + 0.15 * scat.real)
        rx = rf * atten + noise_amp * cnoise()
        env = np.abs(rx * tgc)
        db = 20 * np.log10(env + 1e-9)
        grey = np.clip((db - (top - acq.dynamic_range_db)) / acq.dynamic_range_db * 255.0, 0, 255)
        frame = np.zeros((params.height, params.width), dtype=np.uint8)
        frame[fan.inside] = np.round(ndimage.map_coordinates(grey, coords, order=1, mode="nearest"))
        frames[t] = frame
    return frames, scene.label


def render_frames(params: PhantomParams) -> tuple[np.ndarray, list[dict]]:
    """All frames (N, H, W) uint8 in patient/clip/frame order, with rows
    ``{patient_id, video_id, frame_index, label}``."""
    clips, rows = [], []
    for p in range(params.patients):
        for c in range(params.clips_per_patient):
            frames, label = render_clip(params, patient=p, clip=c)
            clips.append(frames)
            rows += [
                {"patient_id": patient_id(p), "video_id": video_id(p, c), "frame_index": i, "label": label}
                for i in range(len(frames))
            ]
    return np.concatenate(clips), rows
