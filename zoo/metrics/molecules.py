"""MOSES metrics of generated molecules (Polykovskiy et al. 2020, "Molecular Sets (MOSES): a benchmarking
platform for molecular generation models", Front. Pharmacol. 11:565644, arXiv:1811.12823), computed the MOSES
way (molsets 0.3.1, ``moses/metrics``) without importing ``moses``, whose pins no longer install.

The keys of ``moses_metrics`` are those of MOSES's ``get_all_metrics``:

- ``valid``: fraction of the generated SMILES that RDKit parses and sanitises. Every other metric is computed
  on the valid molecules only, as their canonical SMILES (duplicates kept), as MOSES does.
- ``unique@k``: fraction of distinct canonical SMILES among the first k valid ones.
- ``FCD/Test``: Fréchet ChemNet Distance (fcd_torch's ChemNet) between generated and reference molecules (lower
  is better). ``SNN``: mean Tanimoto similarity of each generated molecule to its nearest reference molecule.
  ``Frag`` / ``Scaf``: cosine similarity of BRICS-fragment / Bemis-Murcko-scaffold (two rings or more) counts.
  Each against the test set (``/Test``) and the scaffold test set (``/TestSF``).
- ``IntDiv`` / ``IntDiv2``: 1 - mean (p=1) / root mean square (p=2) Tanimoto similarity over all ordered pairs
  of generated molecules, self-pairs included.
- ``Filters``: fraction passing MOSES's filters (MCF and PAINS SMARTS, rings under 8 atoms, no charges, only
  C N S O F Cl Br H), the filters that built the MOSES dataset.
- ``logP`` / ``QED`` / ``weight``: Wasserstein-1 distance of the property's distribution to the test set's.
  MOSES's ``SA`` is not computed: its fragment scores ship as a pickle, and genzoo never unpickles.
- ``Novelty``: fraction of the distinct valid molecules not in the training set.

Fingerprints are Morgan, radius 2, 1024 bits; all Tanimoto similarities are float32 matrix products in chunks
(MOSES's ``average_agg_tanimoto``), so 30,000 molecules against 176,000 take minutes on one CPU thread.
What a reference set contributes is computed once (``reference_stats``) and cached in genzoo's cache folder
as ``moses_stats/<key>.npz`` (read with ``allow_pickle=False``) and ``.json``; MOSES's own ``*_stats.npz``
are pickles and are never read. RDKit and fcd_torch are imported on first use, so ``import zoo`` stays light.

Example::

    test = reference_stats(test_smiles)              # computed once, then read from the cache
    test_sf = reference_stats(test_scaffold_smiles)
    row = moses_metrics(generated, train_smiles, test, test_sf)
    print(format_table(row, "charrnn-moses"))
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import re
import warnings
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zoo.checks import check_int
from zoo.models.contract import progress_bar

#: bumped whenever a change alters a cached statistic, so old cache files are recomputed rather than trusted
METRICS_VERSION = 1
MORGAN_RADIUS, MORGAN_BITS = 2, 1024
ALLOWED_ATOMS = frozenset({"C", "N", "S", "O", "F", "Cl", "Br", "H"})
PROPERTIES = ("logP", "QED", "weight")
#: caps that bound time and memory: SNN costs (generated x reference) Tanimoto pairs
MAX_GENERATED, MAX_REFERENCE = 200_000, 2_000_000
FILTERS_DIR = Path(__file__).with_name("moses_filters")
INSTALL_HINT = "MOSES metrics need RDKit and fcd_torch: pip install 'genzoo[chem]'"
_CHUNK_GEN, _CHUNK_REF = 1024, 8192  # Tanimoto blocks of (1024, 8192) float32: 32 MB each


# --- RDKit, imported on first use ------------------------------------------------------------------------------

def _chem():
    """RDKit's ``Chem``, imported here so that ``import zoo`` never loads RDKit."""
    try:
        from rdkit import Chem
    except ImportError:
        raise ImportError(INSTALL_HINT) from None
    return Chem


def _quiet():
    """RDKit's log silenced for the block (invalid SMILES are expected here), restored after it."""
    _chem()
    from rdkit import rdBase

    return rdBase.BlockLogs()


def _mol(smiles: str):
    """MOSES's ``get_mol``: the sanitised RDKit molecule, or None for an empty or invalid SMILES."""
    if not isinstance(smiles, str):
        raise TypeError(f"SMILES must be strings, got {type(smiles).__name__}: {smiles!r:.80}")
    if not smiles:
        return None
    Chem = _chem()
    mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        return None
    try:
        Chem.SanitizeMol(mol)
    except ValueError:
        return None
    return mol


def canonical(smiles: str) -> str | None:
    """RDKit's canonical SMILES (MOSES's ``canonic_smiles``): None for an empty or invalid SMILES, so that
    validity, uniqueness and novelty compare molecules rather than spellings."""
    with _quiet():
        mol = _mol(smiles)
        return None if mol is None else _chem().MolToSmiles(mol)


def _canonicals(smiles: Sequence[str], progress: bool | None) -> list[str | None]:
    with _quiet():
        Chem = _chem()
        out = []
        for s in progress_bar(smiles, progress, "canonical SMILES"):
            mol = _mol(s)
            out.append(None if mol is None else Chem.MolToSmiles(mol))
        return out


def _check_smiles(name: str, smiles: Any, cap: int) -> list[str]:
    if isinstance(smiles, str) or not isinstance(smiles, Iterable):
        raise TypeError(f"{name} must be a list of SMILES strings, got {type(smiles).__name__}")
    smiles = list(smiles)
    if not 1 <= len(smiles) <= cap:
        raise ValueError(f"{name} must hold 1..{cap:,} SMILES, got {len(smiles):,}")
    return smiles


# --- validity, uniqueness, novelty ------------------------------------------------------------------------------

def fraction_valid(smiles: Sequence[str], progress: bool | None = False) -> float:
    """Fraction of SMILES that RDKit parses and sanitises (MOSES's ``fraction_valid``)."""
    smiles = _check_smiles("smiles", smiles, MAX_GENERATED)
    return 1 - _canonicals(smiles, progress).count(None) / len(smiles)


def fraction_unique(smiles: Sequence[str], k: int | None = None, check_validity: bool = True,
                    progress: bool | None = False) -> float:
    """Fraction of distinct molecules among the first `k` SMILES (all if None), MOSES's ``fraction_unique``:
    fewer than `k` warn and use them all; invalid SMILES raise (``moses_metrics`` passes the valid ones)
    unless not `check_validity`, where they count as one more distinct value, as in MOSES."""
    smiles = _check_smiles("smiles", smiles, MAX_GENERATED)
    if k is not None:
        check_int("k", k, 1)
        if len(smiles) < k:
            warnings.warn(f"unique@{k} computed on only {len(smiles)} molecules", stacklevel=2)
        smiles = smiles[:k]
    unique = set(_canonicals(smiles, progress))
    if None in unique and check_validity:
        raise ValueError("unique@k takes valid SMILES only; remove the invalid ones first")
    return len(unique) / len(smiles)


def novelty(smiles: Sequence[str], train: Iterable[str], progress: bool | None = False) -> float:
    """Fraction of the distinct valid molecules whose canonical SMILES is not in `train` (MOSES's ``novelty``).

    `train` is compared as given, as MOSES does: it must hold canonical SMILES (MOSES's train split does;
    ``canonical`` makes them)."""
    generated = set(_canonicals(_check_smiles("smiles", smiles, MAX_GENERATED), progress)) - {None}
    if not generated:
        return math.nan
    train = train if isinstance(train, (set, frozenset)) else set(train)
    return len(generated - train) / len(generated)


# --- fingerprints and Tanimoto similarity -----------------------------------------------------------------------

@lru_cache(maxsize=1)
def _morgan():
    _chem()
    from rdkit.Chem import rdFingerprintGenerator

    # the same bits as MOSES's GetMorganFingerprintAsBitVect(mol, 2, nBits=1024), which RDKit deprecates
    return rdFingerprintGenerator.GetMorganGenerator(radius=MORGAN_RADIUS, fpSize=MORGAN_BITS)


def _fingerprint(mol) -> np.ndarray:
    """The Morgan fingerprint (radius 2, 1024 bits) of an RDKit molecule, bit-packed: (128,) uint8."""
    return np.packbits(_morgan().GetFingerprintAsNumPy(mol))


def _unpack(packed: np.ndarray, device: str) -> torch.Tensor:
    return torch.from_numpy(np.unpackbits(packed, axis=1, count=MORGAN_BITS)).to(device).float()


def _tanimoto_blocks(gen: np.ndarray, ref: np.ndarray, progress: bool | None, desc: str, device: str = "cpu"):
    """Yield (first row, Tanimoto block) covering gen (packed, G rows) x ref (packed, R rows), each block
    (up to 1024 rows of gen, 8192 of ref), as float32 matrix products on `device` (exact: the counts are
    integers below 2^24): |a & b| / (|a| + |b| - |a & b|)."""
    n_blocks = math.ceil(len(ref) / _CHUNK_REF) * math.ceil(len(gen) / _CHUNK_GEN)
    bar = progress_bar(range(n_blocks), progress, desc)
    steps = iter(bar)
    buffers = {}  # (G, R) -> two blocks reused in place: fresh 32 MB blocks would cost a quarter of the time
    for r0 in range(0, len(ref), _CHUNK_REF):
        r = _unpack(ref[r0:r0 + _CHUNK_REF], device)  # (R, 1024)
        r_count = r.sum(1)
        for g0 in range(0, len(gen), _CHUNK_GEN):
            g = _unpack(gen[g0:g0 + _CHUNK_GEN], device)  # (G, 1024)
            g_count = g.sum(1)
            if (len(g), len(r)) not in buffers:
                buffers[len(g), len(r)] = torch.empty(2, len(g), len(r), device=device)
            jac, union = buffers[len(g), len(r)]
            torch.mm(g, r.T, out=jac)  # (G, R) bits on in both
            torch.add(g_count[:, None], r_count[None, :], out=union).sub_(jac)  # bits on in either
            jac.div_(union)
            if (g_count == 0).any() and (r_count == 0).any():
                jac.nan_to_num_(nan=1.0)  # two empty fingerprints: MOSES counts them identical
            next(steps, None)
            yield g0, jac  # valid until the next block
    if hasattr(bar, "close"):
        bar.close()


def _snn(gen: np.ndarray, ref: np.ndarray, progress: bool | None, desc: str = "SNN", device: str = "cpu") -> float:
    """Mean over generated molecules of the Tanimoto similarity to the nearest reference molecule."""
    best = torch.zeros(len(gen), device=device)
    for g0, jac in _tanimoto_blocks(gen, ref, progress, desc, device):
        rows = slice(g0, g0 + len(jac))
        best[rows] = torch.maximum(best[rows], jac.amax(1))
    return float(best.double().mean())


def _internal_diversity(fps: np.ndarray, progress: bool | None, device: str = "cpu") -> tuple[float, float]:
    """(IntDiv, IntDiv2): 1 - mean over molecules of (mean over all molecules of sim^p)^(1/p), p = 1 and 2,
    in one pass over the pairs (MOSES's ``internal_diversity``, which counts self-pairs)."""
    s1, s2 = (torch.zeros(len(fps), dtype=torch.float64, device=device) for _ in range(2))
    for g0, jac in _tanimoto_blocks(fps, fps, progress, "IntDiv", device):
        s1[g0:g0 + len(jac)] += jac.sum(1, dtype=torch.float64)
        s2[g0:g0 + len(jac)] += jac.square_().sum(1, dtype=torch.float64)
    return 1 - float((s1 / len(fps)).mean()), 1 - float((s2 / len(fps)).sqrt().mean())


def internal_diversity(smiles: Sequence[str], p: int = 1, device: str = "cpu", progress: bool | None = False) -> float:
    """MOSES's IntDiv (p=1) or IntDiv2 (p=2) of valid SMILES: how unlike each other the molecules are."""
    if p not in (1, 2):
        raise ValueError(f"p must be 1 or 2, got {p!r}")
    fps = _features("smiles", _check_smiles("smiles", smiles, MAX_GENERATED), progress, properties=False).fingerprints
    return _internal_diversity(fps, progress, device)[p - 1]


# --- fragments, scaffolds, properties, filters ------------------------------------------------------------------

def _fragments(mol) -> list[str]:
    """BRICS fragments, as canonical SMILES with their attachment points (MOSES's ``fragmenter``)."""
    Chem = _chem()
    return Chem.MolToSmiles(Chem.FragmentOnBRICSBonds(mol)).split(".")


def _scaffold(mol, min_rings: int = 2) -> str | None:
    """The Bemis-Murcko scaffold if it has at least `min_rings` rings, else None (MOSES's ``compute_scaffold``)."""
    from rdkit.Chem.Scaffolds import MurckoScaffold

    try:
        scaffold = MurckoScaffold.GetScaffoldForMol(mol)
    except (ValueError, RuntimeError):
        return None
    smiles = _chem().MolToSmiles(scaffold)
    return smiles if smiles and scaffold.GetRingInfo().NumRings() >= min_rings else None


def _cosine(a: dict[str, int], b: dict[str, int]) -> float:
    """Cosine similarity of two count vectors given as {name: count} (absent = 0); nan if either is empty."""
    if not a or not b:
        return math.nan
    dot = float(sum(count * b.get(name, 0) for name, count in a.items()))
    return dot / math.sqrt(float(sum(c * c for c in a.values())) * float(sum(c * c for c in b.values())))


def _property_functions() -> dict:
    """MOSES's logP (Crippen), QED and weight (average molecular weight) of an RDKit molecule."""
    _chem()
    from rdkit.Chem import QED, Crippen, Descriptors

    return {"logP": Crippen.MolLogP, "QED": QED.qed, "weight": Descriptors.MolWt}


def wasserstein_1d(u: np.ndarray, v: np.ndarray) -> float:
    """Wasserstein-1 distance of two samples, the area between their CDFs (scipy.stats.wasserstein_distance,
    as MOSES uses, without needing scipy)."""
    u, v = np.sort(np.asarray(u, np.float64)), np.sort(np.asarray(v, np.float64))
    values = np.sort(np.concatenate([u, v]))
    u_cdf = np.searchsorted(u, values[:-1], "right") / len(u)
    v_cdf = np.searchsorted(v, values[:-1], "right") / len(v)
    return float(np.sum(np.abs(u_cdf - v_cdf) * np.diff(values)))


@lru_cache(maxsize=1)
def _filter_patterns() -> tuple:
    """MOSES's MCF and PAINS SMARTS (copies in moses_filters/), parsed once."""
    Chem = _chem()
    with open(FILTERS_DIR / "mcf.csv", newline="") as f:
        smarts = [row["smarts"] for row in csv.DictReader(f)]
    with open(FILTERS_DIR / "wehi_pains.csv", newline="") as f:
        smarts += [row[0] for row in csv.reader(f) if row]  # no header: smarts, name
    patterns = tuple(Chem.MolFromSmarts(s.strip()) for s in smarts)
    if any(p is None for p in patterns):
        raise ValueError(f"an unreadable SMARTS in {FILTERS_DIR}: reinstall genzoo")
    return patterns


@lru_cache(maxsize=1)
def _filter_catalog():
    """The patterns in one RDKit FilterCatalog: ``HasMatch`` runs the same SubstructMatch as MOSES's
    ``any(mol.HasSubstructMatch(p) ...)``, looped in C++ (a fifth faster; no fingerprint screen, which
    RDKit has had false negatives with, e.g. rdkit#258, #2614)."""
    _chem()
    from rdkit.Chem import FilterCatalog

    catalog = FilterCatalog.FilterCatalog()
    for i, pattern in enumerate(_filter_patterns()):
        catalog.AddEntry(FilterCatalog.FilterCatalogEntry(str(i), FilterCatalog.SmartsMatcher(pattern)))
    return catalog


def _passes_filters(mol) -> bool:
    """MOSES's ``mol_passes_filters``, step for step."""
    Chem = _chem()
    ring_info = mol.GetRingInfo()
    if ring_info.NumRings() != 0 and any(len(ring) >= 8 for ring in ring_info.AtomRings()):
        return False
    if any(atom.GetFormalCharge() != 0 for atom in mol.GetAtoms()):
        return False
    if any(atom.GetSymbol() not in ALLOWED_ATOMS for atom in mol.GetAtoms()):
        return False
    if _filter_catalog().HasMatch(Chem.AddHs(mol)):  # MCF and PAINS
        return False
    smiles = Chem.MolToSmiles(mol, isomericSmiles=False)
    return bool(smiles) and Chem.MolFromSmiles(smiles) is not None


def passes_filters(smiles: str) -> bool:
    """Whether a molecule passes MOSES's filters (False if invalid): what the MOSES dataset was filtered by."""
    with _quiet():
        mol = _mol(smiles)
        return mol is not None and _passes_filters(mol)


@dataclass(frozen=True)
class _Features:
    fingerprints: np.ndarray  # (N, 128) uint8
    fragments: Counter
    scaffolds: Counter
    properties: dict[str, np.ndarray]  # name -> (N,); empty if not asked for
    passes_filters: np.ndarray | None  # (N,) bool, for generated molecules
    smiles: list[str] | None  # canonical SMILES of the parsed molecules, for generated molecules


def _features(name: str, smiles: Sequence[str], progress: bool | None, *, properties: bool = True,
              generated: bool = False) -> _Features:
    """Everything computed per molecule, in one pass where each molecule is parsed once and dropped (176,000
    RDKit molecules held at once take gigabytes); `generated` adds the filters and canonical SMILES.
    An invalid SMILES raises ValueError naming it."""
    n = len(smiles)
    fps, fragments, scaffolds = np.empty((n, MORGAN_BITS // 8), np.uint8), Counter(), Counter()
    funcs = _property_functions() if properties else {}
    values = {prop: np.empty(n) for prop in funcs}
    passes, canon = (np.empty(n, bool), []) if generated else (None, None)
    desc = "fingerprints, fragments, scaffolds" + (", properties" if properties else "") + (", filters" if generated else "")
    with _quiet():
        for i, s in enumerate(progress_bar(smiles, progress, desc)):
            mol = _mol(s)
            if mol is None:
                raise ValueError(f"{name}[{i}] is not a valid SMILES: {s!r:.80}; remove invalid SMILES first")
            fps[i] = _fingerprint(mol)
            fragments.update(_fragments(mol))
            scaffold = _scaffold(mol)
            if scaffold is not None:
                scaffolds[scaffold] += 1
            for prop, fn in funcs.items():
                values[prop][i] = fn(mol)
            if generated:
                passes[i] = _passes_filters(mol)
                canon.append(_chem().MolToSmiles(mol))
    return _Features(fps, fragments, scaffolds, values, passes, canon)


# --- FCD ---------------------------------------------------------------------------------------------------------

@lru_cache(maxsize=2)
def _chemnet(device: str, batch_size: int):
    _chem()
    try:
        from fcd_torch import FCD
    except ImportError:
        raise ImportError(INSTALL_HINT) from None
    return FCD(device=device, n_jobs=1, batch_size=batch_size)


def _fcd_moments(smiles: Sequence[str], device: str, batch_size: int, progress: bool | None
                 ) -> tuple[np.ndarray, np.ndarray] | None:
    """Mean (512,) and covariance (512, 512) of ChemNet's activations (fcd_torch's ``precalc``), streamed in
    chunks so memory stays bounded; None for fewer than 2 molecules (FCD is then nan, as in fcd_torch)."""
    if len(smiles) < 2:
        return None
    fcd = _chemnet(device, batch_size)
    step = 8 * batch_size
    n, shift, total, outer = 0, None, 0.0, 0.0
    bar = progress_bar(range(0, len(smiles), step), progress, "FCD (ChemNet)")
    with _quiet(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fcd_torch's np.row_stack
        for start in bar:
            acts = fcd.get_predictions(list(smiles[start:start + step])).astype(np.float64)
            shift = acts.mean(0) if shift is None else shift  # centring on a first estimate keeps the sums exact
            acts -= shift
            n, total, outer = n + len(acts), total + acts.sum(0), outer + acts.T @ acts
    mean = total / n
    return shift + mean, (outer - n * np.outer(mean, mean)) / (n - 1)


def _fcd(ref: tuple | None, gen: tuple | None) -> float:
    if ref is None or gen is None:
        return math.nan
    from fcd_torch.utils import calculate_frechet_distance

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fcd_torch's sqrtm(disp=False), SciPy 1.17
        return float(calculate_frechet_distance(ref[0], ref[1], gen[0], gen[1]))


# --- reference statistics, cached -------------------------------------------------------------------------------

_ARRAYS = ("fcd_mu", "fcd_sigma", "fingerprints", *PROPERTIES)


@dataclass(frozen=True, eq=False)
class ReferenceStats:
    """What MOSES's metrics need of one reference set (the test or the scaffold test split), computed once:
    ChemNet's activation mean and covariance (FCD), packed fingerprints (SNN), BRICS fragment and scaffold
    counts (Frag, Scaf) and property values (logP, QED, weight)."""

    key: str
    n_molecules: int
    fcd_mu: np.ndarray  # (512,)
    fcd_sigma: np.ndarray  # (512, 512)
    fingerprints: np.ndarray  # (N, 128) uint8, packed Morgan bits
    fragments: dict[str, int]
    scaffolds: dict[str, int]
    properties: dict[str, np.ndarray]  # name -> (N,)

    @classmethod
    def compute(cls, smiles: Sequence[str], *, device: str = "cpu", batch_size: int = 512,
                progress: bool | None = True) -> ReferenceStats:
        """The statistics of `smiles` (all valid, at least 2), without the cache."""
        smiles = _check_smiles("reference", smiles, MAX_REFERENCE)
        if len(smiles) < 2:
            raise ValueError(f"a reference set needs at least 2 molecules, got {len(smiles)}")
        features = _features("reference", smiles, progress)  # first: it checks every SMILES
        mu, sigma = _fcd_moments(smiles, device, batch_size, progress)
        return cls(key=stats_key(smiles), n_molecules=len(smiles), fcd_mu=mu, fcd_sigma=sigma,
                   fingerprints=features.fingerprints, fragments=dict(features.fragments),
                   scaffolds=dict(features.scaffolds), properties=features.properties)

    def save(self, folder: str | Path) -> Path:
        """Write ``<key>.npz`` then ``<key>.json`` (which records the npz's sha256 and its own), each atomically."""
        from zoo.hub import write_atomic

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        np.savez(buffer, fcd_mu=self.fcd_mu, fcd_sigma=self.fcd_sigma, fingerprints=self.fingerprints,
                 **self.properties)
        arrays = buffer.getvalue()
        write_atomic(folder / f"{self.key}.npz", arrays)
        meta = {"format": "genzoo-moses-stats", "metrics_version": METRICS_VERSION, "rdkit": _rdkit_version(),
                "key": self.key, "n_molecules": self.n_molecules, "npz_sha256": hashlib.sha256(arrays).hexdigest(),
                "fragments": self.fragments, "scaffolds": self.scaffolds}
        meta["sha256"] = _digest(meta)
        write_atomic(folder / f"{self.key}.json", json.dumps(meta).encode())
        return folder / f"{self.key}.json"

    @classmethod
    def load(cls, folder: str | Path, key: str) -> ReferenceStats:
        """Read the statistics saved under `key`; ValueError if anything is missing, altered or inconsistent."""
        folder = Path(folder)
        try:
            meta = json.loads((folder / f"{key}.json").read_text())
            arrays = (folder / f"{key}.npz").read_bytes()
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"unreadable: {e}") from None
        expected = {"format": "genzoo-moses-stats", "metrics_version": METRICS_VERSION, "key": key}
        if not isinstance(meta, dict) or any(meta.get(k) != v for k, v in expected.items()):
            raise ValueError("not genzoo MOSES statistics of this key and version")
        if meta.pop("sha256", None) != _digest(meta):
            raise ValueError("the .json does not match the checksum it records")
        if meta.get("npz_sha256") != hashlib.sha256(arrays).hexdigest():
            raise ValueError("the .npz does not match the checksum its .json records")
        n = meta.get("n_molecules")
        counts = [meta.get("fragments"), meta.get("scaffolds")]
        if not isinstance(n, int) or n < 2 or not all(
                isinstance(c, dict) and all(isinstance(v, int) and v >= 1 for v in c.values()) for c in counts):
            raise ValueError("malformed molecule, fragment or scaffold counts")
        try:
            with np.load(io.BytesIO(arrays), allow_pickle=False) as npz:
                data = {name: npz[name] for name in npz.files}
        except (ValueError, OSError, EOFError) as e:
            raise ValueError(f"unreadable arrays: {e}") from None
        shapes = {"fcd_mu": (512,), "fcd_sigma": (512, 512), "fingerprints": (n, MORGAN_BITS // 8),
                  **{name: (n,) for name in PROPERTIES}}
        if set(data) != set(_ARRAYS) or any(data[k].shape != s for k, s in shapes.items()) \
                or data["fingerprints"].dtype != np.uint8 \
                or not all(np.isfinite(data[k]).all() for k in _ARRAYS if k != "fingerprints"):
            raise ValueError("arrays of the wrong names, shapes or values")
        return cls(key=key, n_molecules=n, fcd_mu=data["fcd_mu"], fcd_sigma=data["fcd_sigma"],
                   fingerprints=data["fingerprints"], fragments=counts[0], scaffolds=counts[1],
                   properties={name: data[name] for name in PROPERTIES})


def _digest(meta: dict) -> str:
    return hashlib.sha256(json.dumps(meta, sort_keys=True).encode()).hexdigest()


def _rdkit_version() -> str:
    _chem()
    import rdkit

    return rdkit.__version__


def stats_key(smiles: Sequence[str]) -> str:
    """sha256 of the sorted reference SMILES, genzoo's metrics version and RDKit's version (fragments and
    scaffolds are RDKit canonical SMILES, which can change with RDKit)."""
    digest = hashlib.sha256(f"genzoo-moses-stats v{METRICS_VERSION} rdkit {_rdkit_version()}\n".encode())
    for s in sorted(smiles):
        digest.update(s.encode() + b"\n")
    return digest.hexdigest()


def stats_folder() -> Path:
    """Where ``reference_stats`` caches: ``moses_stats/`` in genzoo's cache (``$GENZOO_CACHE``)."""
    from zoo.data.text import cache_dir

    return cache_dir() / "moses_stats"


def reference_stats(smiles: Sequence[str], *, cache: bool = True, folder: str | Path | None = None,
                    device: str = "cpu", batch_size: int = 512, progress: bool | None = True) -> ReferenceStats:
    """The statistics of a reference set, read from the cache when a valid entry exists (a damaged one is
    recomputed, with a warning) and saved there otherwise, so a test set is processed once."""
    smiles = _check_smiles("reference", smiles, MAX_REFERENCE)
    folder = Path(folder) if folder is not None else stats_folder()
    key = stats_key(smiles)
    if cache and (folder / f"{key}.json").exists():
        try:
            return ReferenceStats.load(folder, key)
        except ValueError as e:
            warnings.warn(f"recomputing the MOSES statistics cached in {folder / key}.*: {e}", stacklevel=2)
    stats = ReferenceStats.compute(smiles, device=device, batch_size=batch_size, progress=progress)
    if cache:
        stats.save(folder)
    return stats


# --- all metrics --------------------------------------------------------------------------------------------------

def moses_metrics(generated: Sequence[str], train: Iterable[str] | None,
                  test_stats: ReferenceStats | Sequence[str], test_scaffold_stats: ReferenceStats | Sequence[str] | None = None,
                  *, k: int | Sequence[int] = (1000, 10000), properties: bool = True, device: str = "cpu",
                  batch_size: int = 512, progress: bool | None = True) -> dict[str, float]:
    """MOSES's ``get_all_metrics`` for generated SMILES: keys ``valid``, ``unique@<k>``, ``FCD|SNN|Frag|Scaf``
    ``/Test`` (and ``/TestSF`` with scaffold statistics), ``IntDiv``, ``IntDiv2``, ``Filters``, ``logP``,
    ``QED``, ``weight`` (if `properties`) and ``Novelty`` (if `train`, canonical SMILES, is given).

    A reference may be given as its SMILES (then ``reference_stats`` computes or reads its statistics).
    `device` runs ChemNet and the Tanimoto products (``"cuda"`` speeds up both); `batch_size` is ChemNet's.
    With no valid molecule, ``valid`` is 0 and the rest nan."""
    generated = _check_smiles("generated", generated, MAX_GENERATED)
    k = (k,) if isinstance(k, int) else tuple(k)
    references = {"Test": test_stats, "TestSF": test_scaffold_stats}
    references = {name: stats if isinstance(stats, ReferenceStats) else reference_stats(stats, progress=progress)
                  for name, stats in references.items() if stats is not None}
    canon = _canonicals(generated, progress)
    metrics = {"valid": 1 - canon.count(None) / len(canon)}
    gen = [s for s in canon if s is not None]  # canonical SMILES of the valid molecules, duplicates kept
    for k_ in k:
        metrics[f"unique@{k_}"] = fraction_unique(gen, k_) if gen else math.nan
    if not gen:
        warnings.warn("no valid molecule: every metric but validity is nan", stacklevel=2)
        names = [f"{m}/{r}" for r in references for m in ("FCD", "SNN", "Frag", "Scaf")]
        names += ["IntDiv", "IntDiv2", "Filters", *(PROPERTIES if properties else ()),
                  *(["Novelty"] if train is not None else [])]
        return metrics | dict.fromkeys(names, math.nan)

    # molecules re-parsed from their canonical SMILES, as MOSES does
    features = _features("generated", gen, progress, properties=properties and "Test" in references, generated=True)
    moments = _fcd_moments(gen, device, batch_size, progress)  # once for both references
    fps = features.fingerprints
    for name in ("Test", "TestSF"):
        if name in references:
            ref = references[name]
            metrics[f"FCD/{name}"] = _fcd((ref.fcd_mu, ref.fcd_sigma), moments)
            metrics[f"SNN/{name}"] = _snn(fps, ref.fingerprints, progress, f"SNN/{name}", device)
            metrics[f"Frag/{name}"] = _cosine(ref.fragments, features.fragments)
            metrics[f"Scaf/{name}"] = _cosine(ref.scaffolds, features.scaffolds)
    metrics["IntDiv"], metrics["IntDiv2"] = _internal_diversity(fps, progress, device)
    metrics["Filters"] = float(features.passes_filters.mean())
    if properties and "Test" in references:
        for name in PROPERTIES:
            metrics[name] = wasserstein_1d(references["Test"].properties[name], features.properties[name])
    if train is not None:  # canonical SMILES of the canonical ones, as MOSES's novelty(mols, train) takes them
        train = train if isinstance(train, (set, frozenset)) else set(train)
        metrics["Novelty"] = len(set(features.smiles) - train) / len(set(features.smiles))
    return metrics


# --- the published table -----------------------------------------------------------------------------------------

#: (key, column header, higher is better) of the MOSES README's metrics table, in its order
COLUMNS = (("valid", "Valid", True), ("unique@1000", "Unique@1k", True), ("unique@10000", "Unique@10k", True),
           ("FCD/Test", "FCD/Test", False), ("FCD/TestSF", "FCD/TestSF", False),
           ("SNN/Test", "SNN/Test", True), ("SNN/TestSF", "SNN/TestSF", True),
           ("Frag/Test", "Frag/Test", True), ("Frag/TestSF", "Frag/TestSF", True),
           ("Scaf/Test", "Scaf/Test", True), ("Scaf/TestSF", "Scaf/TestSF", True),
           ("IntDiv", "IntDiv", True), ("IntDiv2", "IntDiv2", True), ("Filters", "Filters", True),
           ("Novelty", "Novelty", True))

# The MOSES README's metrics table (github.com/molecularsets/moses, commit dd7ed6a) as (mean, std) over
# independent runs of each model; "Train" scores the training set itself as if generated (no std).
_TABLE = {
    "Train": [(1.0, None), (1.0, None), (1.0, None), (0.008, None), (0.4755, None), (0.6419, None), (0.5859, None),
              (1.0, None), (0.9986, None), (0.9907, None), (0.0, None), (0.8567, None), (0.8508, None),
              (1.0, None), (1.0, None)],
    "HMM": [(0.076, 0.0322), (0.623, 0.1224), (0.5671, 0.1424), (24.4661, 2.5251), (25.4312, 2.5599),
            (0.3876, 0.0107), (0.3795, 0.0107), (0.5754, 0.1224), (0.5681, 0.1218), (0.2065, 0.0481),
            (0.049, 0.018), (0.8466, 0.0403), (0.8104, 0.0507), (0.9024, 0.0489), (0.9994, 0.001)],
    "NGram": [(0.2376, 0.0025), (0.974, 0.0108), (0.9217, 0.0019), (5.5069, 0.1027), (6.2306, 0.0966),
              (0.5209, 0.001), (0.4997, 0.0005), (0.9846, 0.0012), (0.9815, 0.0012), (0.5302, 0.0163),
              (0.0977, 0.0142), (0.8738, 0.0002), (0.8644, 0.0002), (0.9582, 0.001), (0.9694, 0.001)],
    "Combinatorial": [(1.0, 0.0), (0.9983, 0.0015), (0.9909, 0.0009), (4.2375, 0.037), (4.5113, 0.0274),
                      (0.4514, 0.0003), (0.4388, 0.0002), (0.9912, 0.0004), (0.9904, 0.0003), (0.4445, 0.0056),
                      (0.0865, 0.0027), (0.8732, 0.0002), (0.8666, 0.0002), (0.9557, 0.0018), (0.9878, 0.0008)],
    "CharRNN": [(0.9748, 0.0264), (1.0, 0.0), (0.9994, 0.0003), (0.0732, 0.0247), (0.5204, 0.0379),
                (0.6015, 0.0206), (0.5649, 0.0142), (0.9998, 0.0002), (0.9983, 0.0003), (0.9242, 0.0058),
                (0.1101, 0.0081), (0.8562, 0.0005), (0.8503, 0.0005), (0.9943, 0.0034), (0.8419, 0.0509)],
    "AAE": [(0.9368, 0.0341), (1.0, 0.0), (0.9973, 0.002), (0.5555, 0.2033), (1.0572, 0.2375),
            (0.6081, 0.0043), (0.5677, 0.0045), (0.991, 0.0051), (0.9905, 0.0039), (0.9022, 0.0375),
            (0.0789, 0.009), (0.8557, 0.0031), (0.8499, 0.003), (0.996, 0.0006), (0.7931, 0.0285)],
    "VAE": [(0.9767, 0.0012), (1.0, 0.0), (0.9984, 0.0005), (0.099, 0.0125), (0.567, 0.0338),
            (0.6257, 0.0005), (0.5783, 0.0008), (0.9994, 0.0001), (0.9984, 0.0003), (0.9386, 0.0021),
            (0.0588, 0.0095), (0.8558, 0.0004), (0.8498, 0.0004), (0.997, 0.0002), (0.6949, 0.0069)],
    "JTN-VAE": [(1.0, 0.0), (1.0, 0.0), (0.9996, 0.0003), (0.3954, 0.0234), (0.9382, 0.0531),
                (0.5477, 0.0076), (0.5194, 0.007), (0.9965, 0.0003), (0.9947, 0.0002), (0.8964, 0.0039),
                (0.1009, 0.0105), (0.8551, 0.0034), (0.8493, 0.0035), (0.976, 0.0016), (0.9143, 0.0058)],
    "LatentGAN": [(0.8966, 0.0029), (1.0, 0.0), (0.9968, 0.0002), (0.2968, 0.0087), (0.8281, 0.0117),
                  (0.5371, 0.0004), (0.5132, 0.0002), (0.9986, 0.0004), (0.9972, 0.0007), (0.8867, 0.0009),
                  (0.1072, 0.0098), (0.8565, 0.0007), (0.8505, 0.0006), (0.9735, 0.0006), (0.9498, 0.0006)],
}
#: model -> metric key -> published mean; PUBLISHED_STD: the std where the README gives one
PUBLISHED: dict[str, dict[str, float]] = {
    model: {key: mean for (key, _, _), (mean, _) in zip(COLUMNS, row)} for model, row in _TABLE.items()}
PUBLISHED_STD: dict[str, dict[str, float]] = {
    model: {key: std for (key, _, _), (_, std) in zip(COLUMNS, row) if std is not None} for model, row in _TABLE.items()
    if any(std is not None for _, std in row)}


def _cell(value: Any, std: float | None = None) -> str:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return "–"
    text = "nan" if math.isnan(value) else f"{value:.4f}"
    return text if std is None else f"{text}±{std:.4f}"


def format_table(row: dict[str, float], name: str, *, std: bool = False) -> str:
    """A Markdown table of `row` (``moses_metrics``'s output) under `name`, below MOSES's published rows
    (their means; with `std`, mean±std), columns as in the MOSES README (↑ higher / ↓ lower is better)."""
    header = "| Model | " + " | ".join(f"{title} {'↑' if up else '↓'}" for _, title, up in COLUMNS) + " |"
    lines = [header, "|---|" + "---:|" * len(COLUMNS)]
    for model, means in PUBLISHED.items():
        stds = PUBLISHED_STD.get(model, {}) if std else {}
        lines.append(f"| {model} | " + " | ".join(_cell(means[key], stds.get(key)) for key, _, _ in COLUMNS) + " |")
    label = re.sub(r"([|\\*_`])", r"\\\1", str(name))
    lines.append(f"| **{label}** | " + " | ".join(_cell(row.get(key)) for key, _, _ in COLUMNS) + " |")
    return "\n".join(lines)


# --- one molecule, for the demo -----------------------------------------------------------------------------------

def properties(smiles: str) -> dict[str, Any]:
    """``{"valid": True, "smiles": canonical, "QED", "logP", "weight"}`` of one molecule (RDKit's QED,
    Crippen logP and average molecular weight); an invalid SMILES raises ValueError naming it and why."""
    if not isinstance(smiles, str):
        raise TypeError(f"SMILES must be a string, got {type(smiles).__name__}")
    Chem = _chem()
    from rdkit import rdBase
    from rdkit.Chem import QED, Crippen, Descriptors

    reason = "an empty SMILES" if not smiles.strip() else None
    mol = None
    if reason is None:
        capture = getattr(rdBase, "CaptureErrorLog", None)  # RDKit 2025+; older ones just stay quiet
        with (capture() if capture else rdBase.BlockLogs()) as log:
            mol = Chem.MolFromSmiles(smiles, sanitize=False)
        if mol is None:
            reason = _parse_error(getattr(log, "messages", "") or "") or "RDKit cannot parse it as SMILES"
        else:
            try:
                with rdBase.BlockLogs():
                    Chem.SanitizeMol(mol)
            except ValueError as e:
                reason = " ".join(str(e).split()) or type(e).__name__
    if reason is not None:
        raise ValueError(f"invalid SMILES {smiles!r:.100}: {reason}")
    return {"valid": True, "smiles": Chem.MolToSmiles(mol), "QED": float(QED.qed(mol)),
            "logP": float(Crippen.MolLogP(mol)), "weight": float(Descriptors.MolWt(mol))}


def _parse_error(log: str) -> str | None:
    """The first 'SMILES Parse Error: ...' message of RDKit's log, without its timestamp."""
    for line in log.splitlines():
        _, _, message = line.partition("SMILES Parse Error: ")
        if message:
            return message.strip()
    return None
