"""Time and peak memory of `chaser import` on hostile files (hardening issue, item 3).

Usage: python bench/hostile_bench.py [--case NAME ...] [--runs N] [--source DIR] [--memory-cap MB] [--timeout S] [--keep DIR]

Writes the issue's files at their full size (a 4.9 KB workbook declaring A1:XFD1048576 with a
cell at each corner, a 4 MB .docx whose document.xml inflates to 4 GB, a .docx of 3 million
paragraphs) and a few more, then runs `chaser import FILE` on each in a child process against
a SQLite database holding one small plan. Per run: wall time, peak memory of the child
(`ru_maxrss` from `os.wait4`), exit status, the `chaser:` line, and whether the database still
holds exactly the one plan it had. Generating the files is not timed (the 4 GB one takes
about 15 s: its 4 GB go through zlib once).

--source DIR runs another checkout's code (PYTHONPATH=DIR), e.g. the code before the fix;
--memory-cap and --timeout then keep a file that eats the machine from eating this one
(RLIMIT_AS in the child, and a kill after the timeout).
"""
from __future__ import annotations

import argparse
import os
import platform
import resource
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.importers.makers import (  # noqa: E402
    add_shared_strings,
    docx_body,
    set_declared_size,
    write_csv,
    write_docx_paragraphs,
    write_docx_stream,
    write_docx_text_bomb,
    write_xlsx,
    write_xlsx_far_cells,
)

GB = 1 << 30


def _liar(path: Path) -> Path:
    write_docx_text_bomb(path, 150_000_000)
    return set_declared_size(path, "word/document.xml", 100_000)


def _junk(path: Path) -> Path:
    head, tail = docx_body()
    return write_docx_stream(path, head, b'<w:bookmarkEnd w:id="1"/>', 190_000_000 // 24, tail)


def _quote(path: Path) -> Path:
    rows = [["Ref", "Action", "Owner", "Due Date"], ["A1", '"Review the panels', "HR Lead", "Mar-25"]]
    rows += [[f"A{n}", f"Action number {n}", "HR Lead", "Mar-25"] for n in range(2, 250_001)]
    path.write_text("\n".join(",".join(row) for row in rows) + "\n")
    return path


def _span(path: Path) -> Path:
    head, tail = docx_body(b'<w:tbl><w:tr><w:tc><w:tcPr><w:gridSpan w:val="2000000000"/></w:tcPr><w:p/></w:tc></w:tr></w:tbl>')
    return write_docx_stream(path, head, b"", 0, tail)


def _sheet_junk(path: Path, before: bytes) -> Path:
    """190 MB of unknown elements in a sheet just before ``before``, streamed through the compressor."""
    import zipfile

    plain = write_xlsx(path.with_suffix(".tmp.xlsx"), [["Action", "Owner"], ["x", "y"]])
    with zipfile.ZipFile(plain) as zf:
        parts = [(info.filename, zf.read(info)) for info in zf.infolist()]
    plain.unlink()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for name, data in parts:
            if name != "xl/worksheets/sheet1.xml":
                zf.writestr(name, data)
                continue
            at = data.index(before)
            head, tail = data[:at], data[at:]
            with zf.open(name, "w", force_zip64=True) as fh:
                fh.write(head)
                block = b"<x/>" * 500_000
                for _ in range(95):
                    fh.write(block)
                fh.write(tail)
    return path


CASES: dict[str, tuple[str, Callable[[Path], Path]]] = {
    # The three files.
    "corner.xlsx": ("declares A1:XFD1048576, cells at A1 and XFD1048576",
                    lambda p: write_xlsx_far_cells(p, {"A1": "Action", "B1": "Owner", "XFD1048576": "x"})),
    "bomb.docx": ("document.xml inflates to 4 GB (declared)", lambda p: write_docx_text_bomb(p, 4 * GB)),
    "paragraphs.docx": ("3,000,000 paragraphs", lambda p: write_docx_paragraphs(p, 3_000_000)),
    # Their neighbours.
    "declared.xlsx": ("declares A1:XFD1048576, a real 1-action plan",
                      lambda p: write_xlsx_far_cells(p, {"A1": "Action", "B1": "Owner", "A2": "Review panels",
                                                         "B2": "HR Lead"}, dimension="A1:XFD1048576")),
    "liar.docx": ("declares 100 KB, inflates to 150 MB", _liar),
    "junk.docx": ("190 MB of bookmarks, no paragraph", _junk),
    "span.docx": ("one cell spanning 2 billion columns", _span),
    "sheet-junk.xlsx": ("190 MB of unknown elements after the rows of a sheet",
                        lambda p: _sheet_junk(p, b"<pageMargins")),
    "sheet-prelude.xlsx": ("190 MB of unknown elements before the rows (read as the workbook opens)",
                           lambda p: _sheet_junk(p, b"<sheetPr")),
    "shared-texts.xlsx": ("11 million one-letter shared texts (190 MB)",
                          lambda p: add_shared_strings(write_xlsx(p, [["Action", "Owner"], ["x", "y"]]), 11_000_000)),
    "paragraphs-at-limit.docx": ("200,000 paragraphs: the most accepted", lambda p: write_docx_paragraphs(p, 200_000)),
    "quote.csv": ("250,000 rows, a quote never closed on row 2", _quote),
}


def run_child(
    args: list[str], env: dict[str, str], cwd: Path, memory_cap: int | None, timeout: float
) -> tuple[float, int, int, str]:
    """(seconds, peak RSS in MB, exit status, stderr) of one child process."""

    def limit() -> None:
        if memory_cap:
            resource.setrlimit(resource.RLIMIT_AS, (memory_cap << 20, memory_cap << 20))

    with tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        child = subprocess.Popen(args, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=err, preexec_fn=limit)
        killer = threading.Timer(timeout, child.kill)
        killer.start()
        _, status, usage = os.wait4(child.pid, 0)
        took = time.perf_counter() - started
        killer.cancel()
        child.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        err.seek(0)
        text = err.read().decode(errors="replace").strip()
    return took, usage.ru_maxrss // 1024, child.returncode, text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", action="append", choices=sorted(CASES), help="default: all")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--source", type=Path, help="run the code of this checkout instead")
    parser.add_argument("--memory-cap", type=int, metavar="MB", help="address-space limit of the child")
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--keep", type=Path, help="write the files here and keep them (and reuse them)")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="chaser-hostile-"))
    folder.mkdir(parents=True, exist_ok=True)
    source = (args.source or ROOT).resolve()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHASER_")}
    env["PYTHONPATH"] = str(source)
    chaser = [sys.executable, "-c", "import sys; from chaser.cli import main; sys.exit(main())"]

    database = folder / "bench.db"
    for stale in folder.glob("bench.db*"):
        stale.unlink()
    env["CHASER_DATABASE_URL"] = f"sqlite:///{database}"
    existing = write_csv(folder / "existing.csv", [["Ref", "Action", "Owner"], ["E1", "Keep me", "HR Lead"]])
    # In the folder, not here: python -c puts its working directory first on sys.path.
    subprocess.run(chaser + ["init"], env=env, cwd=folder, check=True, stdout=subprocess.DEVNULL)
    subprocess.run(chaser + ["import", str(existing), "--plan", "Existing"], env=env, cwd=folder, check=True,
                   stdout=subprocess.DEVNULL)
    code = subprocess.run([sys.executable, "-c", "import storage.importers.reading as r; print(r.__file__)"],
                          env=env, cwd=folder, check=True, capture_output=True, text=True).stdout.strip()

    def plans() -> list[tuple[str, int]]:
        with sqlite3.connect(database) as db:
            return db.execute("SELECT p.name, count(a.id) FROM plans p LEFT JOIN actions a ON a.plan_id = p.id "
                              "GROUP BY p.name ORDER BY p.name").fetchall()

    before = plans()
    print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cores; reader: {code}")
    for name in args.case or list(CASES):
        what, make = CASES[name]
        path = folder / name
        if not path.exists():
            started = time.perf_counter()
            make(path)
            print(f"{name}: {what}; {path.stat().st_size / 1e3:,.1f} KB on disk, written in {time.perf_counter() - started:.1f} s")
        else:
            print(f"{name}: {what}; {path.stat().st_size / 1e3:,.1f} KB on disk (kept)")
        for _ in range(args.runs):
            took, peak, code, stderr = run_child(chaser + ["import", str(path)], env, folder, args.memory_cap, args.timeout)
            if plans() != before:
                unchanged = "database changed"
                before = plans()
            else:
                unchanged = "database unchanged"
            last = stderr.splitlines()[-1] if stderr else ""
            lines = len(stderr.splitlines())
            print(f"  {took:6.2f} s  {peak:6,} MB  exit {code}  {unchanged}  {lines} line(s): {last[:160]}")


if __name__ == "__main__":
    main()
