"""Every notebook runs top to bottom at small sizes, and its committed copy is executed."""

from __future__ import annotations

from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").rglob("*.ipynb"))
# The course assignments run at small sizes in test_assignment_notebooks.py (as solution
# and as student version); here only their committed copies are checked.
TUTORIALS = [p for p in NOTEBOOKS if "assignments" not in p.relative_to(ROOT).parts]

# Small sizes CI injects after each notebook's parameters cell (papermill style).
SMALL = {
    "quickstart.ipynb": {"NUM_SEQUENCES": 2, "SEQ_LEN": 16, "NUM_SAMPLES": 500},
    "approximation_gap.ipynb": {
        "DIM": 8, "NUM_HEADS": 2, "STEPS": 20, "BATCH_SIZE": 32, "LENGTHS": [2, 8, 64, 256],
        "NUM_SEQUENCES": 16, "AMORTIZATION_LENGTHS": [16], "AMORTIZATION_SEQUENCES": 8,
        "FIT_STEPS": 20, "EXPERIMENT_OVERRIDES": {"steps": 10}},
    "sufficiency_minimality.ipynb": {
        "DIM": 8, "NUM_HEADS": 2, "STEPS": 20, "CHECKPOINTS": [0, 20], "BATCH_SIZE": 16,
        "NUM_PROBE_TRAIN": 200, "NUM_PROBE_TEST": 200, "NUM_PAIRS": 50, "NUM_SEQUENCES": 8,
        "NUM_PERMUTATIONS": 2},
    "pretraining_transfer.ipynb": {
        "DIM": 8, "BATCH_SIZE": 16, "STEPS": 10, "SUPERVISED": ["kl"], "HEAD_STEPS": 5,
        "CLOSENESS": [0.0, 0.5], "KAPPA_GRID": 10, "BLIND_STEPS": [4, 8],
        "NUM_TRAIN_PROBE": 100, "NUM_TEST": 100, "NUM_RESAMPLES": 50},
    "training_at_scale.ipynb": {
        "STEPS": 12, "CHECKPOINT_EVERY": 4, "STOP_AT": 8, "BATCH_SIZE": 16,
        "BATCH_SIZES": [8, 32], "THROUGHPUT_STEPS": 3, "DDP_STEPS": 3, "DDP_BATCH_SIZE": 8,
        "DIM": 8},
    "image_filtering_lens.ipynb": {
        "NUM_RESAMPLES": 100, "CP_LEN": 48, "CP_TUNE_SEQUENCES": 8, "CP_TEST_SEQUENCES": 4,
        "GP_LEN": 32, "GP_SEQUENCES": 32, "ENC_LEN": 16, "OS_LEN": 32, "OS_SEQUENCES": 8,
        "OS_DEPTH": 8, "ENC_DEPTH": 4, "ENC_SEQUENCES": 4, "CONT_SEQUENCES": 32,
        "EXPERIMENTS": ["denoising-1d"]},
    "ground_truth.ipynb": {
        "CONJUGATE_MODELS": ["normal-mean"], "NUM_SEQUENCES": 2, "NUM_SAMPLES": 500,
        "SHORT_WARMUPS": [3], "SHORT_DRAWS": 100, "MIXTURE_LENGTHS": [1, 16],
        "MIXTURE_SEQUENCES": 300, "LOGREG_SEQUENCES": 8, "LOGREG_DRAWS": 500, "SBC_DRAWS": 20,
        "GRID_DATASETS": 2, "GRID_POINTS": 121},
    "attention_is_bayes.ipynb": {
        "LENGTHS": [1, 4, 16, 64], "NUM_SEQUENCES": 20, "NUM_QUERIES": 8,
        "SWEEP_LENGTHS": [4, 64], "SWEEP_BANDWIDTHS": [0.1, 0.5, 1.0],
        "GP_LENGTHS": [4, 16, 64], "GP_SEQUENCES": 8, "GP_QUERIES": 16,
        "MIX_LENGTHS": [1, 4, 16, 64, 256], "MIX_SEQUENCES": 32, "NUM_RESAMPLES": 100,
        "TAIL_FROM": 16},
}


def _parameters_cell(nb) -> int:
    tagged = [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "a notebook needs exactly one cell tagged 'parameters'"
    return tagged[0]


def test_there_are_notebooks():
    assert NOTEBOOKS, "notebooks/ holds no .ipynb"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_notebook_is_executed_without_errors(path):
    nb = nbformat.read(path, as_version=4)
    _parameters_cell(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    counts = [c.execution_count for c in code]
    assert None not in counts, f"{path.name}: unexecuted cells; run it before committing"
    assert counts == sorted(counts), f"{path.name}: cells were not run top to bottom"
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert not errors, errors


@pytest.mark.slow
@pytest.mark.parametrize("path", TUTORIALS, ids=lambda p: p.name)
def test_notebook_runs_top_to_bottom_at_small_size(path, tmp_path):
    nb = nbformat.read(path, as_version=4)
    overrides = SMALL.get(path.name)
    assert overrides, f"add small CI sizes for {path.name} to SMALL in this test"
    source = "\n".join(f"{k} = {v!r}" for k, v in overrides.items())
    nb.cells.insert(_parameters_cell(nb) + 1, nbformat.v4.new_code_cell(source))
    client = nbclient.NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()
