"""Tally of the command-line fault cases: tried, clean, tracebacks, lost data, hangs.

Runs every case of tests/faults/test_cli_*.py through the real CLI in a forked child (so
a case that trains forever can be stopped) and sorts the outcome:

- clean: exit 2, one line on stderr, no traceback, no file created, changed or removed
  (the huge-ids case must instead succeed: exit 0 and a saved model);
- traceback: a traceback or "unexpected error" on stderr;
- lost data: a file in the folder created, changed or removed by a failed run;
- hang: still running after TIMEOUT seconds;
- accepted: exit 0 for a bad input (e.g. an untrained model saved for --steps 0).

    python benchmarks/fault_tally.py            # run from the repository root
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import tifffile
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "faults"))

from cli_fixtures import FAST, make_files, snapshot  # noqa: E402
from test_cli_numbers import PREDICT_CASES, TRAIN_CASES  # noqa: E402
from test_cli_sizes import TAMPERED, _tampered  # noqa: E402

TIMEOUT = 60.0


def cases(d: Path) -> list[tuple[str, list[str], bool]]:
    """(name, argv, must_succeed) for every fault case, with its files prepared in `d`."""
    out = []
    train = ["train", "--image", str(d / "img.tif"), "--instances", str(d / "lbl.tif"), "--out", str(d / "new.pt")]
    for option, value in TRAIN_CASES:
        fast = FAST if option not in ("--seconds", "--steps") else FAST[2:]
        out.append((f"train {option} {value}", [*train, *fast, option, value], False))
    predict = ["predict", "--model", str(d / "m.pt"), "--image", str(d / "img.tif"), "--quiet"]
    for option, value in PREDICT_CASES:
        out.append((f"predict {option} {value}", [*predict, "--instances", str(d / "out.tif"), option, value], False))
    scribbles = np.load(d / "scribbles.npy").astype(np.uint16)
    scribbles[0, 0] = 50000
    np.save(d / "stray.npy", scribbles)
    out.append(("scribble value 50000", ["train", "--image", str(d / "img.tif"), "--scribbles", str(d / "stray.npy"),
                                         "--out", str(d / "new.pt"), *FAST], False))
    labels = tifffile.imread(d / "lbl.tif").astype(np.uint64)
    labels[labels > 0] += np.uint64(2**40)
    tifffile.imwrite(d / "huge.tif", labels)
    out.append(("instance ids near 2**40", ["train", "--image", str(d / "img.tif"), "--instances", str(d / "huge.tif"),
                                            "--out", str(d / "huge.pt"), *FAST], True))
    for name, (changes, _) in TAMPERED.items():
        torch.save(_tampered(d, **changes), d / f"tampered {name}.pt")
        out.append((f"checkpoint: {name}", ["predict", "--model", str(d / f"tampered {name}.pt"), "--image",
                                            str(d / "img.tif"), "--instances", str(d / "out.tif"), "--quiet"], False))
    outputs = [
        ("unsupported second output", ["--instances", "inst.tif", "--semantic", "sem.jpg"]),
        ("same path twice", ["--instances", "same.tif", "--semantic", "same.tif"]),
        ("missing folder", ["--instances", "inst.tif", "--semantic", "missing/sem.tif"]),
        ("output is a folder", ["--instances", "inst.tif", "--semantic", str(d)]),
        ("existing output", ["--instances", "inst.tif", "--semantic", "keep.tif"]),
        ("PNG cannot hold the third output", ["--instances", "inst.tif", "--semantic", "sem.tif",
                                              "--probabilities", "prob.png"]),
        ("failed second output with --overwrite", ["--semantic", "keep.tif", "--probabilities", "prob.png",
                                                   "--overwrite"]),
    ]
    for name, args in outputs:
        args = [a if a.startswith("--") or a.startswith("/") else str(d / a) for a in args]
        out.append((name, [*predict, *args], False))
    locked = d / "locked"
    locked.mkdir()
    if os.geteuid() != 0:
        locked.chmod(0o555)
    elif subprocess.run(["chattr", "+i", str(locked)], capture_output=True).returncode != 0:
        locked = None
    if locked is not None:
        out.append(("read-only destination (predict)", [*predict, "--instances", str(locked / "inst.zarr")], False))
        out.append(("read-only destination (train)", [*train[:-1], str(locked / "m.pt"), *FAST], False))
    (d / "models").mkdir()
    out.append(("model path is a folder", [*train[:-1], str(d / "models"), *FAST], False))
    return out


def _child(argv: list[str], err_path: str) -> None:
    fd = os.open(err_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(fd, 2)
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
    from napari_unet.cli import main

    try:
        status = main(argv)
    except SystemExit as done:
        status = done.code if isinstance(done.code, int) else 1
    except BaseException:
        import traceback

        traceback.print_exc()
        status = 1
    sys.stderr.flush()
    os._exit(status)


def run_case(argv: list[str], folder: Path, must_succeed: bool) -> str:
    before = snapshot(folder)
    err_path = tempfile.mktemp(suffix=".err")
    child = multiprocessing.get_context("fork").Process(target=_child, args=(argv, err_path))
    child.start()
    child.join(TIMEOUT)
    if child.is_alive():
        child.kill()
        child.join()
        return "hang"
    err = Path(err_path).read_text().strip()
    os.unlink(err_path)
    if "Traceback" in err or "unexpected error" in err:
        return "traceback"
    if must_succeed:
        return "clean" if child.exitcode == 0 else "other"
    if child.exitcode == 0:
        return "accepted"
    after = snapshot(folder)
    if after != before:
        return "lost data"
    return "clean" if child.exitcode == 2 and len(err.splitlines()) == 1 else "other"


def main() -> int:
    import napari_unet.cli  # noqa: F401  (imported once, before forking)

    outcomes = Counter()
    with tempfile.TemporaryDirectory() as tmp:
        folder = make_files(Path(tmp))
        all_cases = cases(folder)
        for name, argv, must_succeed in all_cases:
            outcome = run_case(argv, folder, must_succeed)
            for leftover in ("new.pt", "out.tif", "huge.pt", "inst.tif", "sem.tif", "same.tif"):
                (folder / leftover).unlink(missing_ok=True)  # a case that wrongly wrote must not affect the next
            outcomes[outcome] += 1
            print(f"{outcome:10s} {name}", flush=True)
        if (folder / "locked").exists() and os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(folder / "locked")], check=False)
    print(f"\ntried {len(all_cases)}: " + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
