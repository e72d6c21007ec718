"""Peak disk of a hub checkpoint series: keep_checkpoints true against disk-bounded mode.

A local server speaking the hub's protocol (tests/hubserver.py) serves a series of random-weight
OLMoE checkpoints on step branches; the workflow downloads and monitors them (routing, loss,
pathways, distances; no benchmarks) once per mode, side by side, offline from the real hub. A
sampler thread adds up the bytes on disk under resources/ and the HF cache (hard links counted
once) every 0.1 s. Prints a table and, as its last line, one JSON object with the figures.

    python benchmarks/disk_bounded.py [--checkpoints 8] [--on-disk 2] [--hidden 256]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from hubserver import HubServer  # noqa: E402

REPO = "bench/olmoe-series"


def disk_bytes(*roots: Path) -> int:
    seen, total = set(), 0
    for root in roots:
        for dirpath, _, files in os.walk(root):
            for name in files:
                try:
                    st = os.lstat(os.path.join(dirpath, name))
                except FileNotFoundError:
                    continue  # deleted while walking
                if (st.st_dev, st.st_ino) not in seen:
                    seen.add((st.st_dev, st.st_ino))
                    total += st.st_blocks * 512
    return total


class Sampler(threading.Thread):
    def __init__(self, *roots: Path) -> None:
        super().__init__(daemon=True)
        self.roots, self.peak, self.done = roots, 0, threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            self.peak = max(self.peak, disk_bytes(*self.roots))
            time.sleep(0.1)


def build_series(n: int, hidden: int, workdir: Path) -> tuple[dict[str, dict[str, bytes]], list[str], int]:
    from grokpath.pretrain import ModelShape, build_model
    from grokpath.tokenizer import train_word_tokenizer

    texts = [f"{a} plus {b} is {a + b}" for a in range(40) for b in range(10)]
    tok = train_word_tokenizer(texts)
    # the embedded series' shape (pretrain.ModelShape) at another width, built as pretrain builds it
    shape = ModelShape(hidden_size=hidden, intermediate_size=2 * hidden)
    branches, size = {}, 0
    for i in range(n):
        folder = workdir / f"ckpt{i}"
        build_model(shape, tok, seed=i).save_pretrained(folder)
        tok.save_pretrained(folder)
        files = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
        size = sum(len(b) for b in files.values())
        branches[f"step{(i + 1) * 100}-tokens{i + 1}M"] = files
    return branches, texts, size


def run_mode(server: HubServer, branches: list[str], texts: list[str], keep: bool, on_disk: int, cores: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="grokpath-disk-") as tmp:
        wd, hf_home = Path(tmp) / "wf", Path(tmp) / "hf_home"
        wd.mkdir()
        hf_home.mkdir()
        (wd / "resources").mkdir()
        shutil.copy(ROOT / "Snakefile", wd)
        for name in ("workflow", "envs"):
            shutil.copytree(ROOT / name, wd / name)
        for split, rows in (("train", texts[:200]), ("val", texts[200:260])):
            (wd / f"{split}.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in rows))
        config = {
            "keep_checkpoints": keep,
            "checkpoints_on_disk": on_disk,
            "models": {
                "series": {
                    "source": "hf",
                    "repo": REPO,
                    "checkpoints": [{"id": f"c{i}", "step": i, "revision": b} for i, b in enumerate(branches)],
                }
            },
            "domains": {
                "math": {
                    "source": "jsonl",
                    "samples_path": "train.jsonl",
                    "validation_path": "val.jsonl",
                    "n_samples": 64,
                    "n_validation": 16,
                }
            },
            "ablation": {"taus": []},
            "distance": {"max_pairs": 200},
        }
        (wd / "config.yaml").write_text(yaml.safe_dump(config))
        sampler = Sampler(wd / "resources", hf_home)
        sampler.start()
        start = time.perf_counter()
        subprocess.run(
            [
                str(Path(sys.executable).with_name("snakemake")),
                "--cores",
                str(cores),
                "--configfile",
                "config.yaml",
                "-q",
            ],
            cwd=wd,
            env=server.env(hf_home),
            check=True,
            capture_output=True,
        )
        wall = time.perf_counter() - start
        sampler.done.set()
        sampler.join()
        return {"wall_s": wall, "peak_bytes": sampler.peak, "final_bytes": disk_bytes(wd / "resources", hf_home)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoints", type=int, default=8)
    parser.add_argument("--on-disk", type=int, default=2, help="checkpoints_on_disk in disk-bounded mode")
    parser.add_argument("--hidden", type=int, default=256, help="hidden size (sets the checkpoint size)")
    parser.add_argument("--cores", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, HubServer() as server:
        series, texts, size = build_series(args.checkpoints, args.hidden, Path(tmp))
        server.add_repo(REPO, series)
        branches = list(series)
        results = {
            "keep": run_mode(server, branches, texts, True, args.on_disk, args.cores),
            "bounded": run_mode(server, branches, texts, False, args.on_disk, args.cores),
        }
    mb = 1e6
    print(f"series: {args.checkpoints} checkpoints of {size / mb:.1f} MB (random-weight OLMoE, hidden {args.hidden})")
    print(f"{'mode':<28}{'peak disk MB':>14}{'after run MB':>14}{'peak / ckpt':>13}{'wall s':>9}")
    for mode, label in (("keep", "keep_checkpoints: true"), ("bounded", f"disk-bounded, on_disk={args.on_disk}")):
        r = results[mode]
        print(
            f"{label:<28}{r['peak_bytes'] / mb:>14.1f}{r['final_bytes'] / mb:>14.1f}"
            f"{r['peak_bytes'] / size:>13.2f}{r['wall_s']:>9.1f}"
        )
    print(
        json.dumps(
            {
                "benchmark": "disk_bounded",
                "machine": f"{platform.machine()} {os.cpu_count()} cores",
                "checkpoints": args.checkpoints,
                "checkpoint_bytes": size,
                "checkpoints_on_disk": args.on_disk,
                **{f"{m}_{k}": v for m, r in results.items() for k, v in r.items()},
            }
        )
    )


if __name__ == "__main__":
    main()
