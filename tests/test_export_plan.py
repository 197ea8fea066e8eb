"""The Qt-free half of the export: where datasets go, what is replaced, what the user is told."""

from __future__ import annotations

from pathlib import Path

from napari_unet.io.export import ExportResult, dataset_paths, plan_targets


def test_dataset_paths_are_safe_and_unique_case_insensitively(tmp_path):
    paths = dataset_paths(tmp_path, ["cells 1/2", "Cells 1/2", "..", "CON"])
    assert [p.name for p in paths] == ["cells_1_2.zarr", "Cells_1_2_2.zarr", "image.zarr", "CON_.zarr"]


def test_existing_datasets_are_replaced_only_when_confirmed(tmp_path):
    (tmp_path / "a.zarr").mkdir()
    (tmp_path / "b.zarr").mkdir()
    (tmp_path / "c.zarr").write_text("not a dataset")
    asked: list[Path] = []

    def confirm(path: Path) -> bool:
        asked.append(path)
        return path.name == "a.zarr"

    result = ExportResult(tmp_path)
    targets = plan_targets(tmp_path, ["a", "b", "c", "d"], result, confirm)
    assert targets == [(0, tmp_path / "a.zarr", True), (3, tmp_path / "d.zarr", False)]
    assert [p.name for p in asked] == ["a.zarr", "b.zarr"]
    assert result.skipped == {"b": "b.zarr already exists and was kept"}
    assert "is a file, not a dataset" in result.failed["c"]


def test_summary_says_what_happened(tmp_path):
    done = ExportResult(tmp_path, written={"a": tmp_path / "a.zarr"}, model_path=tmp_path / "model.pt")
    assert done.summary() == [("info", f"exported 1 dataset(s) to {tmp_path}: a.zarr and model.pt")]
    cancelled = ExportResult(tmp_path, written={"a": tmp_path / "a.zarr"}, cancelled=True)
    assert cancelled.summary() == [
        ("warning", "export cancelled: the dataset in progress was not written; already written: a.zarr")]
    nothing = ExportResult(tmp_path, skipped={"b": "b.zarr already exists and was kept"})
    assert nothing.summary() == [("warning", "skipped 'b': b.zarr already exists and was kept"),
                                 ("warning", "nothing was exported")]
    assert not ExportResult(tmp_path, model_error="disk full").ok
