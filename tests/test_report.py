"""The risk report: rendered from risk runs on a synced short world (SQLite and PostgreSQL), checked for
its content, self-containment and HTML, then opened in a real headless chromium (screenshot, DOM)."""

from __future__ import annotations

import shutil
import struct
import subprocess
import zlib
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select

from indexer.chain.rpc import RpcClient
from indexer.config import load_settings
from indexer.devchain.anvil import free_port
from indexer.devchain.chain import short_timeline, start_devchain
from indexer.devchain.live import produce_blocks
from indexer.offchain import load_files
from indexer.report import SECTIONS, STATUS_COLOURS, ReportError, usd, write_report
from indexer.risk import load_policy
from indexer.runs.job import run_and_store
from indexer.store import models as m
from indexer.store.engine import make_engine, open_store, upgrade
from indexer.sync.startup import prepare
from indexer.sync.tick import sync

POLICY = "default"
CHARTS = 12  # SVG charts on a page (an empty chart is still an <svg> saying so)
CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)


@pytest.fixture(scope="module")
def short_world(tmp_path_factory):
    """Eight days of the small world, then six more blocks: two synced heads to run risk at."""
    chain = start_devchain(port=free_port(), state_dir=tmp_path_factory.mktemp("report"), seed=7, scale="small",
                           timeline=short_timeline(8))
    rpc = RpcClient(chain.url, timeout=120)
    try:
        first = load_settings(chain.manifest_path).world["head_block"]
        last = produce_blocks(rpc, chain.sim, 6, 1_800)[-1]
        yield chain, first, last
    finally:
        rpc.close()
        chain.node.stop(remove_state=True)


def synced_runs(chain, url: str, first: int, last: int):
    """Sync to `first`, run with no book (no positions), load the book, run, sync to `last`, run."""
    settings = load_settings(chain.manifest_path, database_url=url)
    engine = open_store(settings)
    rpc = RpcClient(chain.url, timeout=120)
    try:
        ctx = prepare(settings, rpc)
        sync(engine, ctx, to_block=first)
        cid = settings.chain.chain_id
        bare = run_and_store(engine, cid, POLICY)
        load_files(engine, settings, accounts=settings.world["accounts_csv"],
                   positions=settings.world["positions_csv"])
        early = run_and_store(engine, cid, POLICY)
        sync(engine, ctx, to_block=last)
        late = run_and_store(engine, cid, POLICY)
    finally:
        rpc.close()
    return engine, cid, (bare, early, late)


class Page(HTMLParser):
    """Tags, attributes and text of a page; fails on tags closed out of order."""

    VOID = {"meta", "br", "link", "img", "input", "hr", "rect", "line", "circle", "polyline"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.tags: dict[str, int] = {}
        self.attrs: list[tuple[str, str | None]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags[tag] = self.tags.get(tag, 0) + 1
        self.attrs += attrs
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.tags[tag] = self.tags.get(tag, 0) + 1
        self.attrs += attrs

    def handle_endtag(self, tag):
        if tag in self.VOID:
            return
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes <{self.stack[-1] if self.stack else None}>"
        self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def parse(page: str) -> Page:
    p = Page()
    p.feed(page)
    p.close()
    assert p.stack == ["html"] or p.stack == [], p.stack  # </html> may be implied
    return p


def assert_self_contained(page: str, parsed: Page) -> None:
    assert "http://" not in page and "https://" not in page
    assert "<script" not in page.lower() and "@import" not in page and "url(" not in page
    assert not [a for a, _ in parsed.attrs if a in ("src", "href", "xlink:href")]


def test_report_of_the_latest_run_and_of_a_run_with_no_positions(short_world, db_url, tmp_path):
    chain, first, last = short_world
    engine = open_store(load_settings(chain.manifest_path, database_url=db_url))
    cid = load_settings(chain.manifest_path).chain.chain_id
    with pytest.raises(ReportError, match=f"no risk runs stored for chain {cid}"):
        write_report(engine, cid, tmp_path / "none")
    engine.dispose()

    engine, cid, (bare, early, late) = synced_runs(chain, db_url, first, last)
    try:
        assert early.block_number == first < late.block_number == last
        path = write_report(engine, cid, tmp_path / "report", policy=load_policy(POLICY))
        assert path == tmp_path / "report" / "index.html"
        page = path.read_text(encoding="utf-8")
        parsed = parse(page)
        text = " ".join(parsed.text)
        for title in SECTIONS:
            assert title in text, title
        assert parsed.tags["section"] == len(SECTIONS)
        assert parsed.tags["svg"] >= CHARTS
        assert_self_contained(page, parsed)

        W = m.RiskWallet
        with engine.connect() as conn:
            total = conn.execute(select(func.sum(W.collateral)).where(W.run_id == late.run_id)).scalar()
            statuses = dict(conn.execute(select(W.status, func.count()).where(W.run_id == late.run_id)
                                         .group_by(W.status)).all())
            # largest dollar shortfall first, then the healthy nearest the margin-call line in dollars
            under = conn.execute(select(W.wallet).where(W.run_id == late.run_id, W.im > 0, W.excess < 0)
                                 .order_by(W.excess, W.wallet).limit(3)).scalars().all()
            nearest = conn.execute(select(W.wallet).where(W.run_id == late.run_id, W.im > 0, W.status == "healthy")
                                   .order_by(W.excess, W.wallet).limit(5)).scalars().all()
        assert f"run {late.run_id}" in text and f"block {last}" in text
        assert usd(total) in text and total == pytest.approx(late.collateral_usd)
        assert statuses.get("margin_call", 0) + statuses.get("liquidate", 0) >= 3
        assert len(under) == 3 and len(nearest) == 5
        for wallet in [*under, *nearest]:
            assert wallet in text, wallet
        # the policy the run used was given: the caps are drawn
        assert "platform cap 25%" in text and "wallet share cap 40%" in text
        # every run of the chain is in the history, the no-positions run with no collateral
        for run in (bare, early, late):
            assert f"<td>{run.run_id}</td><td>{run.block_number:,}</td>" in page
        assert "ACCOUNT_UNKNOWN" in text and "ACCOUNT_JURISDICTION" in text

        # the run with no book: no positions, nothing eligible, and every chart still there
        page = write_report(engine, cid, tmp_path / "bare", run_id=bare.run_id).read_text(encoding="utf-8")
        parsed = parse(page)
        text = " ".join(parsed.text)
        assert f"run {bare.run_id}" in text and "no wallet has positions in this run" in text
        assert "$0" in text and parsed.tags["svg"] >= CHARTS
        assert "shares are shown without their caps" in text  # no policy given
        with pytest.raises(ReportError, match=f"no risk run {late.run_id + 100} for chain {cid}"):
            write_report(engine, cid, tmp_path / "x", run_id=late.run_id + 100)
        # a policy that is not the run's is named, and its caps are not drawn
        other = load_policy("kraken_2026")
        page = write_report(engine, cid, tmp_path / "other", policy=other).read_text(encoding="utf-8")
        assert "is not the one this run used" in page and "platform cap" not in page
    finally:
        engine.dispose()


def test_a_run_with_no_rows_renders(db_url, tmp_path):
    upgrade(db_url)
    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:
            run_id = conn.execute(m.RiskRunRecord.__table__.insert().values(
                chain_id=5, block_number=7, block_timestamp=1_767_225_600, policy_name="default<&>",
                policy_version="2026.1", policy_hash="ab" * 32, market_state="holiday", seconds_to_next_open=3600,
                wallets=0, holdings=0, positions=0, collateral_usd=0.0, started_at=1.0e9, seconds=0.1)
            ).inserted_primary_key[0]
        page = write_report(engine, 5, tmp_path).read_text(encoding="utf-8")
        parsed = parse(page)
        text = " ".join(parsed.text)
        assert f"run {run_id}" in text and "block 7" in text and "default<&>/2026.1" in text
        assert "default&lt;&amp;&gt;" in page and "default<&>" not in page  # escaped
        assert parsed.tags["svg"] >= CHARTS and "no data" in text
        assert_self_contained(page, parsed)
        with pytest.raises(ReportError, match="no risk runs stored for chain 6"):
            write_report(engine, 6, tmp_path)
    finally:
        engine.dispose()


# ---------------------------------------------------------------------------------------- the browser


def read_png(data: bytes) -> np.ndarray:
    """Decode an 8-bit RGB/RGBA non-interlaced PNG (what chromium writes) into an (h, w, channels) array,
    checking every chunk's CRC and the decompressed size."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, ihdr = 8, [], None
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        assert zlib.crc32(kind + body) == struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])[0], kind
        if kind == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
        pos += 12 + n
    assert ihdr is not None
    w, h, depth, ctype, _, _, interlace = ihdr
    assert depth == 8 and ctype in (2, 6) and interlace == 0, ihdr
    bpp = 3 if ctype == 2 else 4
    stride = w * bpp
    raw = zlib.decompress(b"".join(idat))
    assert len(raw) == h * (stride + 1)
    out = np.zeros((h, stride), dtype=np.uint8)
    prev = np.zeros(stride, dtype=np.uint8)
    for y in range(h):
        kind = raw[y * (stride + 1)]
        line = np.frombuffer(raw, dtype=np.uint8, count=stride, offset=y * (stride + 1) + 1)
        if kind == 0:
            cur = line.copy()
        elif kind == 1:  # Sub: a running sum per channel, modulo 256
            cur = np.cumsum(line.reshape(-1, bpp), axis=0, dtype=np.uint8).reshape(-1)
        elif kind == 2:  # Up
            cur = line + prev
        elif kind in (3, 4):  # Average, Paeth: byte by byte
            buf, up = bytearray(line.tobytes()), prev.tobytes()
            for i in range(stride):
                a = buf[i - bpp] if i >= bpp else 0
                b = up[i]
                if kind == 3:
                    buf[i] = (buf[i] + ((a + b) >> 1)) & 255
                else:
                    c = up[i - bpp] if i >= bpp else 0
                    pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                    buf[i] = (buf[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
            cur = np.frombuffer(bytes(buf), dtype=np.uint8)
        else:
            raise AssertionError(f"row {y}: filter {kind}")
        out[y] = cur
        prev = out[y]
    return out.reshape(h, w, bpp)


def chromium(*args: str, profile: Path) -> subprocess.CompletedProcess:
    assert CHROMIUM is not None
    return subprocess.run([CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           "--no-first-run", f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=180, check=False)


def hex_rgb(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (`make test` installs Debian's chromium "
                    "when run as root with apt-get)")
def test_report_in_headless_chromium(short_world, tmp_path):
    chain, first, last = short_world
    engine, cid, _ = synced_runs(chain, f"sqlite:///{tmp_path / 'report.sqlite'}", first, last)
    try:
        path = write_report(engine, cid, tmp_path / "report", policy=load_policy(POLICY))
    finally:
        engine.dispose()
    url = path.resolve().as_uri()

    shot = tmp_path / "report.png"
    done = chromium(f"--screenshot={shot}", "--window-size=1400,4000", url, profile=tmp_path / "profile")
    assert done.returncode == 0 and shot.exists(), done.stderr[-2000:]
    img = read_png(shot.read_bytes())
    assert img.shape[:2] == (4000, 1400)
    rgb = img[..., :3].reshape(-1, 3)
    colours = np.unique(rgb, axis=0)
    assert len(colours) > 200, len(colours)  # text, charts, anti-aliasing: not a blank page
    found = {tuple(c) for c in colours.tolist()}
    for status in ("healthy", "liquidate"):  # the status colours of the bars were painted
        assert hex_rgb(STATUS_COLOURS[status]) in found, status
    assert hex_rgb("#1f2937") in found  # the header
    # some of every band of the page is drawn (no blank quarter)
    for band in np.array_split(img[..., :3], 4):
        assert len(np.unique(band.reshape(-1, 3), axis=0)) > 50

    dom = chromium("--dump-dom", url, profile=tmp_path / "profile")
    assert dom.returncode == 0, dom.stderr[-2000:]
    rendered = parse(dom.stdout)
    assert rendered.tags.get("svg", 0) >= CHARTS and rendered.tags.get("rect", 0) > 100
    text = " ".join(rendered.text)
    assert all(title in text for title in SECTIONS)


def test_backtest_section_draws_failure_rates_per_class_and_policy():
    """'Haircuts against history' from two policies' backtests of one history with a crash: a bar per class,
    window kind and policy at its failure rate, the expected rate as a tick, the table with Kupiec's verdicts."""
    from indexer.report.page import _backtest_section
    from indexer.risk.backtest import backtest
    from indexer.risk.calendar import xnys
    from indexer.runs.backtest import BacktestRun
    from tests.risk.test_backtest import NOW, calm, world

    prices = calm(150, sigma=0.005)
    prices[120:] *= 0.75  # -25% in one session
    snap = world(prices)
    policies = [load_policy("default"), load_policy("kraken_2026")]
    results = tuple(backtest(snap.tokens, snap.feeds, snap.history, snap.actions, NOW, p, xnys()) for p in policies)
    run = BacktestRun(31337, 99, NOW, ("default", "kraken_2026"), ("default", "kraken_2026"), ("a", "b"), results,
                      len(snap.history.updated_at), 0.0, 0.0)
    html = _backtest_section(run)
    assert SECTIONS[10] in html and html.count("<svg") == 1
    ours = next(c for c in results[0].classes if (c.group, c.kind) == ("single_stock", "horizon"))
    theirs = next(c for c in results[1].classes if (c.group, c.kind) == ("single_stock", "horizon"))
    assert (ours.failures, ours.statistical_failures, theirs.failures) == (0, 1, 1)  # 25%: more than Kraken's flat 20%, less than ours
    assert f"kraken_2026: 1/{theirs.windows} failed; no vol part" in html
    assert f"default: 0/{ours.windows} failed; vol part 1/{ours.windows}" in html
    assert "single_stock · horizon · kraken_2026: expected at the policy&#x27;s confidence 1.0%" in html
    # header + (single_stock, all) x 2 policies, horizons only: the feed prints at closes, so no gap has a print
    assert html.count("<tr>") == 1 + 2 * 2
    assert "Not backtested" in _backtest_section("nothing is synced yet")


# ------------------------------------------------------------------ margin ranking, clients, the book, notes


@pytest.fixture(scope="module")
def synced(short_world, tmp_path_factory):
    """The short world synced into one SQLite database with its three runs (`synced_runs`)."""
    chain, first, last = short_world
    engine, cid, runs = synced_runs(chain, f"sqlite:///{tmp_path_factory.mktemp('synced') / 'report.sqlite'}",
                                    first, last)
    try:
        yield chain, engine, cid, runs
    finally:
        engine.dispose()


def section_of(page: str, title: str) -> str:
    start = page.index(f"<h2>{title}</h2>")
    return page[start:page.index("</section>", start)]


def table_wallets(table_html: str) -> list[str]:
    import re

    return re.findall(r'<td class="l addr">(0x[0-9a-f]{40})</td>', table_html)


def test_the_shortfall_list_ranks_by_dollars_not_by_share_of_im():
    """A small wallet 40% short of its IM comes after a large one 10% short: the desk calls the dollars first."""
    from indexer.report.analysis import short_of_margin

    w = {"wallet": np.array(["0xb", "0xa", "0xc", "0xd"]), "im": np.array([1_000.0, 100_000.0, 50.0, 10.0]),
         "excess": np.array([-400.0, -10_000.0, -5.0, 2.0])}
    assert short_of_margin(w).tolist() == [1, 0, 2]
    by_ratio = sorted([0, 1, 2], key=lambda i: w["excess"][i] / w["im"][i])
    assert by_ratio == [0, 1, 2] != short_of_margin(w).tolist()


def test_margin_lists_rank_wallets_by_dollars(synced, tmp_path):
    """Under initial margin: the largest dollar shortfalls IM - equity first, margin calls among them, not the
    lowest ratios; healthy: the smallest dollar distance to the margin-call line first, with its % of IM."""
    from indexer.report.format import pct

    _, engine, cid, (_, _, late) = synced
    page = write_report(engine, cid, tmp_path / "r").read_text(encoding="utf-8")
    html = section_of(page, SECTIONS[3])
    W = m.RiskWallet
    with engine.connect() as conn:
        rows = conn.execute(select(W.wallet, W.status, W.equity, W.im, W.mm, W.excess)
                            .where(W.run_id == late.run_id, W.im > 0)).all()
    under = sorted((r for r in rows if r.excess < 0), key=lambda r: (r.excess, r.wallet))
    healthy = sorted((r for r in rows if r.status == "healthy"), key=lambda r: (r.excess, r.wallet))
    # measured on this world (seed 7, 8 days and 3 hours): 106 wallets with positions, 103 healthy, 3 in margin
    # call (the largest 57,400 USD short of IM, 11.5% of its IM), none liquidating
    assert 3 <= len(under) <= 12 < len(healthy)
    _, short_table, near_table = html.split("<table>")
    assert table_wallets(short_table) == [r.wallet for r in under]
    assert table_wallets(near_table) == [r.wallet for r in healthy[:12]]
    # the largest dollar shortfall leads, with its status, IM - equity and its share of IM
    top = under[0]
    assert top.im - top.equity == max(r.im - r.equity for r in rows) > 50_000
    first_row = short_table.split("</tr>")[1]
    assert f"<td>{usd(top.im - top.equity)}</td><td>{pct((top.im - top.equity) / top.im)}</td>" in first_row
    assert f">{top.status}</span>" in first_row
    assert (f"Under initial margin: {len(under)} wallets, {usd(-sum(r.excess for r in under))} short of IM in all"
            in html)
    near = healthy[0]
    first_row = near_table.split("</tr>")[1]
    assert f"<td>{usd(near.excess)}</td><td>{pct(near.excess / near.im)}</td>" in first_row
    assert f"Healthy: {len(healthy)} wallets; nearest the margin-call line" in html and "the first 12 shown" in html


def test_report_splits_clients_from_non_clients(synced, tmp_path):
    """Wallets with no account on file (ACCOUNT_UNKNOWN) apart from the venue's clients: in the headline cards,
    per token, per asset class, in the eligibility codes and over time; the status counts are the clients'."""
    from indexer.report.format import num, pct
    from indexer.risk import Eligibility

    _, engine, cid, (_, _, late) = synced
    page = write_report(engine, cid, tmp_path / "r").read_text(encoding="utf-8")
    H, W, T = m.RiskHolding, m.RiskWallet, m.Token
    unknown = H.codes.op("&")(int(Eligibility.ACCOUNT_UNKNOWN)) != 0
    with engine.connect() as conn:
        outside = set(conn.execute(select(H.wallet).where(H.run_id == late.run_id, unknown)).scalars())
        wallets = conn.execute(select(W).where(W.run_id == late.run_id)).all()
        holdings = conn.execute(select(H.symbol, H.wallet, H.market_value, H.collateral_value, T.asset_class)
                                .join(T, T.address == H.token).where(H.run_id == late.run_id)).all()
        accounts = conn.execute(select(func.count()).select_from(m.Account)).scalar()
    clients = [w for w in wallets if w.wallet not in outside]
    client_mv = sum(w.market_value for w in clients)
    outside_mv = sum(w.market_value for w in wallets if w.wallet in outside)
    share = outside_mv / (client_mv + outside_mv)
    # measured on this world: 408 accounts; 740 wallets hold tokens with no account on file, 72.5% of the market value
    assert len(clients) == accounts and 0.6 < share < 0.85 and len(outside) > len(clients)
    assert sum(h.collateral_value for h in holdings if h.wallet in outside) == 0

    def card(key: str, value: str) -> str:
        return f'<div class="card"><div class="k">{key}</div><div class="v">{value}</div></div>'

    header = page[page.index("<header>"):page.index("</header>")]
    ours, theirs = header.split("Not clients (no account on file")
    for key, value in (("wallets", num(len(clients))), ("market value", usd(client_mv)),
                       ("share of market value", pct(1 - share)), ("collateral", usd(sum(w.collateral for w in clients))),
                       ("with positions", num(sum(w.im > 0 for w in clients)))):
        assert card(key, value) in ours, key
    for status in ("healthy", "margin_call", "liquidate"):  # the clients' own counts, non-clients apart
        assert card(status.replace("_", " "), num(sum(w.status == status for w in clients))) in ours
    assert sum(w.status == "healthy" for w in clients) < sum(w.status == "healthy" for w in wallets)
    for key, value in (("wallets", num(len(outside))), ("market value", usd(outside_mv)),
                       ("share of market value", pct(share)), ("collateral", usd(0.0)), ("with positions", "0")):
        assert card(key, value) in theirs, key

    # per token and per asset class: the clients' holders and value, and the non-clients' beside them
    by_token: dict[str, list] = {}
    for h in holdings:
        by_token.setdefault(h.symbol, []).append(h)
    for sym, rows in by_token.items():
        ins = [h for h in rows if h.wallet not in outside]
        out = [h for h in rows if h.wallet in outside]
        assert (f'<td class="l">{sym}</td><td class="l">{rows[0].asset_class}</td><td>{num(len(ins))}</td>'
                f'<td>{usd(sum(h.market_value for h in ins))}</td>'
                f'<td>{usd(sum(h.collateral_value for h in ins))}</td>') in page, sym
        assert f"<td>{num(len(out))}</td><td>{usd(sum(h.market_value for h in out))}</td></tr>" in page, sym
    classes = {h.asset_class for h in holdings}
    for cls in classes:
        ins = sum(h.market_value for h in holdings if h.asset_class == cls and h.wallet not in outside)
        out = sum(h.market_value for h in holdings if h.asset_class == cls and h.wallet in outside)
        assert f'<td class="l">{cls}</td><td>{usd(ins)}</td>' in page and f"<td>{usd(out)}</td></tr>" in page, cls

    codes = section_of(page, SECTIONS[8])
    assert f"Held by non-clients (no account on file: ACCOUNT_UNKNOWN): {usd(outside_mv)} ({pct(share)}" in codes
    n_unknown = sum(1 for h in holdings if h.wallet in outside)
    assert f'<td class="l">ACCOUNT_UNKNOWN</td><td>0</td><td>$0</td><td>{num(n_unknown)}</td>' in codes
    history = section_of(page, SECTIONS[7])
    assert f"<td>{usd(client_mv)}</td><td>{usd(late.collateral_usd)}</td><td>{usd(outside_mv)}</td>" in history


def test_run_notes_name_the_tokens_the_policy_does_not_list(synced, tmp_path):
    """A policy without COIN and TLT: their holdings count zero, and the run's notes (the summary `risk run`
    prints, risk_runs.notes) name each with the market value left out."""
    import re

    _, engine, cid, (_, early, _) = synced
    source = (Path(__file__).parent.parent / "indexer" / "policies" / f"{POLICY}.toml").read_text()
    trimmed = re.sub(r"^\[tokens\.(COIN|TLT)\]\n(?:(?!\[).*\n)*", "", source, flags=re.M)
    assert "[tokens.COIN]" not in trimmed and "[tokens.TLT]" not in trimmed and "[tokens.GLDx]" in trimmed
    path = tmp_path / "no_coin_no_tlt.toml"
    path.write_text(trimmed)
    summary = run_and_store(engine, cid, str(path), block=early.block_number)
    H = m.RiskHolding
    with engine.connect() as conn:
        held = dict(conn.execute(select(H.symbol, func.sum(H.market_value)).where(H.run_id == summary.run_id)
                                 .group_by(H.symbol)).all())
        holders = dict(conn.execute(select(H.symbol, func.count()).where(H.run_id == summary.run_id)
                                    .group_by(H.symbol)).all())
        counted = dict(conn.execute(select(H.symbol, func.sum(H.collateral_value)).where(H.run_id == summary.run_id)
                                    .group_by(H.symbol)).all())
        stored = conn.execute(select(m.RiskRunRecord.notes).where(m.RiskRunRecord.id == summary.run_id)).scalar()
    version = load_policy(str(path)).version_string
    for sym in ("COIN", "TLT"):
        assert counted[sym] == 0 and held[sym] > 100_000  # measured: millions of USD held in each
        note = (f"{sym}: not listed in policy {version}: held by {holders[sym]:,} wallets, {held[sym]:,.2f} USD of "
                "market value left out (TOKEN_NOT_ELIGIBLE)")
        assert note in summary.notes and note in stored.split("\n")
    assert not any("not listed in policy" in n and not n.startswith(("COIN", "TLT")) for n in summary.notes)
    # under the full policy there is nothing to say
    assert not any("not listed in policy" in n for n in run_and_store(engine, cid, POLICY, block=early.block_number).notes)


def test_the_demo_book_opened_at_the_worlds_rounds_and_is_mostly_healthy(synced):
    """The world's book as loaded: every position's entry price is a round of its crypto feed on this chain from
    before the book's time, at many different prices; at the book's time most wallets with positions are
    healthy, a few in margin call."""
    _, engine, cid, (_, early, late) = synced
    F, R, P, W = m.Feed, m.PriceRound, m.Position, m.RiskWallet
    with engine.connect() as conn:
        feeds = dict(conn.execute(select(F.name, F.address).where(F.chain_id == cid)).all())
        rounds = {base: {round(a / 1e8, 2): t for a, t in conn.execute(
            select(R.answer_raw, R.updated_at).where(R.chain_id == cid, R.feed == feeds[f"{base}/USD"]))}
            for base in ("BTC", "ETH")}
        positions = conn.execute(select(P.base_asset, P.entry_price, P.leverage)).all()
        status = {run.run_id: dict(conn.execute(select(W.status, func.count()).where(W.run_id == run.run_id, W.im > 0)
                                                .group_by(W.status)).all()) for run in (early, late)}
    assert len(positions) == sum(status[early.run_id].values()) > 100
    for p in positions:
        opened = rounds[p.base_asset].get(p.entry_price)
        assert opened is not None and opened <= early.block_timestamp, p
    assert len({p.entry_price for p in positions}) > len(positions) // 2
    assert sum(p.leverage <= 5 for p in positions) >= 0.8 * len(positions)
    # measured at the book's time (day 8): 109 healthy, 3 margin call, none liquidating; 108, 4, 0 three hours on
    for run in (early, late):
        counts = status[run.run_id]
        assert counts["healthy"] >= 0.9 * len(positions) and counts.get("margin_call", 0) >= 3
        assert counts.get("liquidate", 0) <= 0.02 * len(positions)
