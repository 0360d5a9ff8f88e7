"""MOSES metrics: MOSES's own expected values (molecularsets/moses tests/test_metrics.py, commit dd7ed6a),
hand-checkable answers, the cache and the errors."""

import json
import subprocess
import sys
import warnings

import numpy as np
import pytest
import scipy.stats

from zoo.metrics import molecules as zm

# MOSES's test fixture (tests/test_metrics.py, setUp)
TEST = ["Oc1ccccc1-c1cccc2cnccc12", "COc1cccc(NC(=O)Cc2coc3ccc(OC)cc23)c1"]
TEST_SF = ["COCc1nnc(NC(=O)COc2ccc(C(C)(C)C)cc2)s1", "O=C(C1CC2C=CC1C2)N1CCOc2ccccc21",
           "Nc1c(Br)cccc1C(=O)Nc1ccncn1"]
GEN = ["CNC", "Oc1ccccc1-c1cccc2cnccc12", "INVALID", "CCCP", "Cc1noc(C)c1CN(C)C(=O)Nc1cc(F)cc(F)c1",
       "Cc1nc(NCc2ccccc2)no1-c1ccccc1"]
# MOSES's targets, checked as MOSES checks them: np.allclose (rtol 1e-5, atol 1e-8).
TARGET = {"valid": 2 / 3, "unique@3": 1.0,
          # fcd_torch 1.0.7 itself now gives 52.583759 here (torch 2.13, numpy 2.4, scipy 1.17): the test set's
          # covariance has rank 1, so sqrtm amplifies float noise; genzoo's streamed moments give 52.583757.
          # Both are 7.5e-7 relative from MOSES's figure, inside its tolerance.
          "FCD/Test": 52.58371754126664,
          "SNN/Test": 0.3152585653588176, "Frag/Test": 0.3, "Scaf/Test": 0.5,
          "IntDiv": 0.7189187309761661,  # genzoo sums in float64: 0.71891873097047, 8e-12 relative
          "Filters": 0.75, "logP": 1.63229, "QED": 0.20370891752648637, "weight": 106.87}
# MOSES's "SA": 0.5238335295121783 is not reproduced: its fragment scores ship as a pickle, never unpickled.


@pytest.fixture(scope="module")
def test_stats():
    return zm.ReferenceStats.compute(TEST, progress=False)


@pytest.fixture(scope="module")
def moses_row(test_stats):
    return zm.moses_metrics(GEN, None, test_stats, k=(3,), progress=False)


@pytest.mark.parametrize("name", list(TARGET))
def test_get_all_metrics_reproduces_moses(moses_row, name):
    assert np.allclose(moses_row[name], TARGET[name]), (name, moses_row[name], TARGET[name])


def test_get_all_metrics_with_scaffold_test_set(test_stats):
    """MOSES's test_get_all_metrics_scaffold only runs it; here the /TestSF keys exist and are numbers."""
    row = zm.moses_metrics(GEN, ["CNC"], test_stats, zm.ReferenceStats.compute(TEST_SF, progress=False),
                           k=(3,), progress=False)
    assert {f"{m}/TestSF" for m in ("FCD", "SNN", "Frag", "Scaf")} <= set(row)
    assert all(np.isfinite(row[f"{m}/TestSF"]) for m in ("FCD", "SNN", "Frag")) and row["Scaf/TestSF"] == 0
    assert row["Novelty"] == 3 / 4  # CNC is in this "training set"
    assert list(row)[:6] == ["valid", "unique@3", "FCD/Test", "SNN/Test", "Frag/Test", "Scaf/Test"]


def test_valid_unique_as_moses():
    mols = ["CCNC", "CCC", "INVALID", "CCC"]
    assert np.allclose(zm.fraction_valid(mols), 3 / 4)
    assert np.allclose(zm.fraction_unique(mols, check_validity=False), 3 / 4)
    assert np.allclose(zm.fraction_unique(mols, k=2), 1)
    with pytest.raises(ValueError, match="valid SMILES only"):
        zm.fraction_unique(mols)
    with pytest.warns(UserWarning, match="unique@10 computed on only 4"):
        assert zm.fraction_unique(["C", "CC", "OCC", "CCO"], k=10) == 3 / 4


def test_canonical_and_invalid_smiles():
    assert zm.canonical("OCC") == zm.canonical("C(O)C") == "CCO"
    for bad in ["", "INVALID", "C(C", "N(C)(C)(C)C", "c1cccc1"]:
        assert zm.canonical(bad) is None
    with pytest.raises(TypeError, match="strings"):
        zm.canonical(None)
    assert zm.novelty(["CCO", "OCC", "CCN", "INVALID"], train={"CCO"}) == 1 / 2


def test_no_valid_molecule_gives_nan_not_a_crash(test_stats):
    with pytest.warns(UserWarning, match="no valid molecule"):
        row = zm.moses_metrics(["INVALID", "C(C"], ["CC"], test_stats, k=(3,), progress=False)
    assert row["valid"] == 0 and np.isnan(row["FCD/Test"]) and np.isnan(row["Novelty"])


def test_a_reference_with_invalid_smiles_is_refused():
    with pytest.raises(ValueError, match=r"reference\[1\] is not a valid SMILES: 'C\(C'"):
        zm.ReferenceStats.compute(["CCO", "C(C", "CCN"], progress=False)


def test_filters_follow_moses_rules():
    assert zm.passes_filters("CCO") and zm.passes_filters("C1CCCCCC1")  # a 7-ring is allowed
    assert not zm.passes_filters("C1CCCCCCC1")  # rings of 8 atoms or more are not
    assert not zm.passes_filters("CCCP")  # phosphorus is not an allowed atom
    assert not zm.passes_filters("CC(=O)[O-]")  # no charges
    assert not zm.passes_filters("O=C1C=CC(=O)C=C1")  # a quinone: PAINS
    assert not zm.passes_filters("C=CC#N")  # MCF1, a Michael acceptor
    assert not zm.passes_filters("INVALID")
    assert len(zm._filter_patterns()) == 22 + 480  # MCF + PAINS, every SMARTS parsed


def test_the_filter_catalog_is_moses_pattern_loop():
    """genzoo matches the 502 SMARTS through one RDKit FilterCatalog; MOSES loops HasSubstructMatch."""
    from rdkit import Chem

    smiles = ["O=C1C=CC(=O)C=C1", "C=CC#N", "CC(=O)Cl", "c1ccccc1N=Nc1ccccc1", "Oc1ccccc1O", "CCO",
              "Cc1noc(C)c1CN(C)C(=O)Nc1cc(F)cc(F)c1", "C=Cc1ccc(N(C)C)cc1", "CC(C)(C)C(=O)C(Oc1ccc(Cl)cc1)n1ccnc1",
              "CCOC(=O)C=Cc1ccc(O)c(O)c1", "S=C1NC(=O)C(=Cc2ccccc2)S1", "CN(C)c1ccc(C=Cc2ccccc2)cc1", *TEST, *TEST_SF]
    verdicts = []
    for s in smiles:
        with_h = Chem.AddHs(Chem.MolFromSmiles(s))
        loop = any(with_h.HasSubstructMatch(p) for p in zm._filter_patterns())
        assert zm._filter_catalog().HasMatch(with_h) == loop, s
        verdicts.append(loop)
    assert 4 <= sum(verdicts) < len(verdicts)  # both kinds are covered


def test_tanimoto_blocks_match_a_brute_force(monkeypatch):
    """SNN and IntDiv against numpy on random fingerprints, with tiny chunks so blocks and edges are crossed;
    empty fingerprints are identical to each other (MOSES's nan -> 1)."""
    monkeypatch.setattr(zm, "_CHUNK_GEN", 3)
    monkeypatch.setattr(zm, "_CHUNK_REF", 5)
    rng = np.random.default_rng(0)
    gen, ref = (rng.random((n, zm.MORGAN_BITS)) < 0.05 for n in (7, 12))
    gen[2], ref[4] = False, False
    a, b = gen.astype(float), ref.astype(float)

    def tanimoto(x, y):
        with np.errstate(invalid="ignore"):
            return np.nan_to_num((x @ y.T) / (x.sum(1)[:, None] + y.sum(1)[None] - x @ y.T), nan=1.0)

    sim = tanimoto(a, b)
    packed_gen, packed_ref = np.packbits(gen, axis=1), np.packbits(ref, axis=1)
    assert np.isclose(zm._snn(packed_gen, packed_ref, False), sim.max(1).mean(), rtol=1e-6)
    self_sim = tanimoto(a, a)
    intdiv, intdiv2 = zm._internal_diversity(packed_gen, False)
    assert np.isclose(intdiv, 1 - self_sim.mean(1).mean(), rtol=1e-6)
    assert np.isclose(intdiv2, 1 - np.sqrt((self_sim ** 2).mean(1)).mean(), rtol=1e-6)


def test_fcd_moments_streamed_in_chunks_equal_fcd_torch():
    smiles = ["CCO", "CCN", "c1ccccc1", "CC(=O)O", "CCCCCl", "c1ccncc1", "OCCO", "CC(C)C", "C1CCCCC1",
              "CC(=O)Nc1ccccc1", "COc1ccccc1", "CCOC(=O)C", "NCCN", "c1ccoc1", "CSC", "CC#N", "O=C=O",
              "CCCCCCCC", "Clc1ccccc1", "CN(C)C"] + TEST + TEST_SF
    mu, sigma = zm._fcd_moments(smiles, "cpu", 2, False)  # chunks of 16: two of them
    # the same batch size: ChemNet's float32 activations move by ~1e-6 with it
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fcd_torch's np.row_stack
        acts = zm._chemnet("cpu", 2).get_predictions(smiles)
    assert np.allclose(mu, acts.mean(0), rtol=0, atol=1e-6)  # fcd_torch's mean is float32, genzoo's float64
    assert np.allclose(sigma, np.cov(acts.T), rtol=0, atol=1e-14)
    assert zm._fcd_moments(["CCO"], "cpu", 2, False) is None  # FCD needs two molecules


def test_wasserstein_matches_scipy():
    rng = np.random.default_rng(1)
    u, v = rng.normal(size=50), rng.normal(0.5, 2, size=33)
    assert np.isclose(zm.wasserstein_1d(u, v), scipy.stats.wasserstein_distance(u, v), rtol=1e-12)


def _same(a, b):
    assert a.key == b.key and a.n_molecules == b.n_molecules
    assert a.fragments == b.fragments and a.scaffolds == b.scaffolds
    for name in ("fcd_mu", "fcd_sigma", "fingerprints"):
        assert np.array_equal(getattr(a, name), getattr(b, name))
    assert all(np.array_equal(a.properties[k], b.properties[k]) for k in zm.PROPERTIES)


def test_cache_round_trip_and_damage(tmp_path, monkeypatch):
    computed = zm.reference_stats(TEST_SF, folder=tmp_path, progress=False)
    npz, meta = tmp_path / f"{computed.key}.npz", tmp_path / f"{computed.key}.json"
    assert npz.is_file() and meta.is_file() and sorted(p.name for p in tmp_path.iterdir()) == sorted([npz.name, meta.name])
    with np.load(npz, allow_pickle=False) as arrays:  # plain arrays, nothing pickled
        assert all(arrays[name].dtype != object for name in arrays.files)

    real_compute = zm.ReferenceStats.compute
    calls = []

    def counting_compute(*args, **kwargs):
        calls.append(1)
        return real_compute(*args, **kwargs)

    monkeypatch.setattr(zm.ReferenceStats, "compute", counting_compute)
    _same(zm.reference_stats(list(reversed(TEST_SF)), folder=tmp_path, progress=False), computed)  # order-free key
    assert calls == []  # read from the cache

    good = meta.read_text()
    damages = {"truncated npz": lambda: npz.write_bytes(npz.read_bytes()[:100]),
               "truncated json": lambda: meta.write_text(good[:50]),
               "edited count": lambda: meta.write_text(json.dumps(
                   json.loads(good) | {"scaffolds": {k: v + 1 for k, v in json.loads(good)["scaffolds"].items()}})),
               "missing npz": lambda: npz.unlink()}
    for n, (what, damage) in enumerate(damages.items(), start=1):
        damage()
        with pytest.warns(UserWarning, match="recomputing"):
            _same(zm.reference_stats(TEST_SF, folder=tmp_path, progress=False), computed)
        assert len(calls) == n, what  # recomputed, not trusted ...
        zm.ReferenceStats.load(tmp_path, computed.key)  # ... and the cache repaired


def test_cache_lives_in_genzoo_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GENZOO_CACHE", str(tmp_path))
    assert zm.stats_folder() == tmp_path / "moses_stats"
    row = zm.moses_metrics(GEN, None, TEST, k=(3,), properties=False, progress=False)  # SMILES: stats cached
    assert np.allclose(row["SNN/Test"], TARGET["SNN/Test"]) and "logP" not in row
    assert len(list((tmp_path / "moses_stats").glob("*.npz"))) == 1


def test_missing_rdkit_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "rdkit", None)
    with pytest.raises(ImportError) as info:
        zm.canonical("CCO")
    assert str(info.value) == zm.INSTALL_HINT and "\n" not in str(info.value)
    assert "pip install 'genzoo[chem]'" in str(info.value)


def test_missing_fcd_torch_says_what_to_install(monkeypatch):
    zm._chemnet.cache_clear()
    monkeypatch.setitem(sys.modules, "fcd_torch", None)
    try:
        with pytest.raises(ImportError, match=r"pip install 'genzoo\[chem\]'"):
            zm.ReferenceStats.compute(TEST, progress=False)
    finally:
        zm._chemnet.cache_clear()


def test_importing_zoo_loads_no_rdkit():
    code = ("import sys, zoo, zoo.metrics, zoo.metrics.molecules; "
            "print(','.join(m for m in ('rdkit', 'fcd_torch', 'moses') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_properties_of_one_molecule():
    aspirin = zm.properties("OC(=O)c1ccccc1OC(C)=O")
    assert aspirin["valid"] is True and aspirin["smiles"] == "CC(=O)Oc1ccccc1C(=O)O"
    assert np.isclose(aspirin["weight"], 180.159) and np.isclose(aspirin["logP"], 1.3101)
    assert np.isclose(aspirin["QED"], 0.5501, atol=1e-4)  # Bickerton et al. 2012 give 0.55 for aspirin
    for bad, why in [("C(C", "parenthes"), ("N(C)(C)(C)C", "valence"), ("c1cccc1", "kekulize"), ("", "empty")]:
        with pytest.raises(ValueError, match=why) as info:
            zm.properties(bad)
        assert repr(bad) in str(info.value)


def test_published_table_and_format():
    assert list(zm.PUBLISHED) == ["Train", "HMM", "NGram", "Combinatorial", "CharRNN", "AAE", "VAE", "JTN-VAE",
                                  "LatentGAN"]
    assert zm.PUBLISHED["CharRNN"]["FCD/Test"] == 0.0732 and zm.PUBLISHED_STD["CharRNN"]["FCD/Test"] == 0.0247
    assert zm.PUBLISHED["JTN-VAE"]["Novelty"] == 0.9143 and zm.PUBLISHED["Train"]["Scaf/TestSF"] == 0.0
    assert "Train" not in zm.PUBLISHED_STD and all(len(row) == 15 for row in zm.PUBLISHED.values())
    table = zm.format_table({"valid": 0.5, "FCD/Test": 1.23456, "SNN/Test": float("nan")}, "my|model")
    lines = table.splitlines()
    assert len(lines) == 2 + 9 + 1 and all(line.count("|") == 17 for line in lines[:2])
    assert lines[-1].startswith("| **my\\|model** | 0.5000 | – | – | 1.2346 | – | nan |")
    assert "| CharRNN | 0.9748 | 1.0000 | 0.9994 | 0.0732 |" in table and "FCD/Test ↓" in lines[0]
    assert "0.9748±0.0264" in zm.format_table({}, "x", std=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        zm.format_table({}, "x")
