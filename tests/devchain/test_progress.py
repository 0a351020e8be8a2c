"""`devchain up` off a terminal: one plain, flushed line per step and per tenth of the world's blocks."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

from typer.testing import CliRunner

from indexer import cli
from indexer.devchain.anvil import free_port
from indexer.devchain.progress import PlainProgress


class Recording(io.StringIO):
    """A stream that notes what had been written at each flush."""

    def __init__(self) -> None:
        super().__init__()
        self.flushed: list[str] = []

    def flush(self) -> None:
        self.flushed.append(self.getvalue())


def test_each_step_and_each_tenth_of_the_blocks_is_one_flushed_line():
    now = [100.0]
    out = Recording()
    p = PlainProgress(out, clock=lambda: now[0])
    p.phase("starting anvil on port 8545")
    now[0] += 2.5
    p.phase("playing 5,760 world blocks")
    for done in range(50, 5_760, 50):
        now[0] += 0.5
        p.blocks(done, 5_760)
    p.blocks(5_760, 5_760)
    p.phase("writing the manifest and the off-chain book")
    lines = out.getvalue().splitlines()
    assert lines[:2] == ["[   0.0s] starting anvil on port 8545", "[   2.5s] playing 5,760 world blocks"]
    blocks = lines[2:-1]
    assert [re.sub(r"^\[ *[\d.]+s\] ", "", b) for b in blocks] == [
        "world blocks: 600/5,760 (10%)", "world blocks: 1,200/5,760 (20%)", "world blocks: 1,750/5,760 (30%)",
        "world blocks: 2,350/5,760 (40%)", "world blocks: 2,900/5,760 (50%)", "world blocks: 3,500/5,760 (60%)",
        "world blocks: 4,050/5,760 (70%)", "world blocks: 4,650/5,760 (80%)", "world blocks: 5,200/5,760 (90%)",
        "world blocks: 5,760/5,760 (100%)"]
    assert blocks[0] == "[   8.5s] world blocks: 600/5,760 (10%)"  # 12 calls of 0.5s after 2.5s
    assert lines[-1].endswith("] writing the manifest and the off-chain book")
    # every line was flushed as soon as it was written
    assert out.flushed == ["".join(f"{line}\n" for line in lines[:k]) for k in range(1, len(lines) + 1)]


def test_a_short_world_still_ends_at_all_of_its_blocks():
    out = io.StringIO()
    p = PlainProgress(out, clock=lambda: 0.0)
    p.blocks(50, 96)
    p.blocks(96, 96)
    p.blocks(96, 96)  # said once
    p.blocks(0, 0)  # no blocks: nothing to say
    assert out.getvalue().splitlines() == ["[   0.0s] world blocks: 50/96 (52%)",
                                           "[   0.0s] world blocks: 96/96 (100%)"]


def test_devchain_up_off_a_terminal_prints_its_steps_on_stdout(monkeypatch, tmp_path):
    """The command wires the plain reporter when its output is not a terminal (CliRunner's is not)."""
    from indexer.devchain import chain as devchain

    def fake_start(*, port, state_dir, seed, scale, timeline, progress, phase):
        phase(f"starting anvil on port {port}")
        phase("playing 96 world blocks")
        progress(50, 96)
        progress(96, 96)
        phase("writing the manifest and the off-chain book")
        return SimpleNamespace(url=f"http://127.0.0.1:{port}", manifest_path=state_dir / "manifest.toml")

    monkeypatch.setattr(devchain, "start_devchain", fake_start)
    res = CliRunner().invoke(cli.app, ["devchain", "up", "--port", "18555", "--state-dir", str(tmp_path)],
                             env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    steps = [re.sub(r"^\[ *[\d.]+s\] ", "", line) for line in res.stdout.splitlines()]
    assert steps == ["starting anvil on port 18555", "playing 96 world blocks", "world blocks: 50/96 (52%)",
                     "world blocks: 96/96 (100%)", "writing the manifest and the off-chain book",
                     f"dev chain up at http://127.0.0.1:18555; manifest: {tmp_path / 'manifest.toml'}",
                     "stop it with `collateral-indexer devchain down`"]
    assert res.stderr == ""


def test_a_failed_start_off_a_terminal_shows_how_far_it_got(tmp_path):
    port = free_port()
    r = subprocess.run([sys.executable, "-m", "indexer.cli", "devchain", "up", "--port", str(port), "--state-dir",
                        str(tmp_path)], capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
                       env={**os.environ, "ANVIL_BIN": str(Path(tmp_path) / "no-such-anvil")})
    assert r.returncode == 1
    assert len(r.stdout.splitlines()) == 1
    assert re.fullmatch(rf"\[ +\d+\.\ds\] starting anvil on port {port}\n", r.stdout)
    assert "not an executable" in r.stderr and len(r.stderr.strip().splitlines()) == 1
