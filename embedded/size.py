#!/usr/bin/env python3
"""Code size of the firmware: section sizes, and .text by crate.

    python3 size.py FIRMWARE_ELF [BASELINE_ELF]

Section sizes come from the ELF section headers, read here (no tool needed).
With a baseline (the same firmware without wsmachine) the difference is what
wsmachine and the scenario's driver add.

.text by crate needs `llvm-dwarfdump` (Debian's `llvm` package): every byte
of .text is charged to the source file its DWARF line table names, so code
inlined into the firmware's `main` still counts for the crate it came from
(symbol sizes would charge it to `main`). Bytes without line information
(hand-written assembly, padding) are listed as "(no line info)".
"""

import os
import re
import shutil
import struct
import subprocess
import sys

HERE = os.path.dirname(os.path.realpath(__file__))  # embedded/
REPO = os.path.dirname(HERE)  # the wsmachine crate
SECTIONS = [".vector_table", ".text", ".rodata", ".data", ".bss"]


def sections(path):
    """{name: (addr, size)} from the ELF section headers."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"\x7fELF":
        raise SystemExit(f"{path}: not an ELF file")
    is64, little = data[4] == 2, data[5] == 1
    e = "<" if little else ">"
    if is64:
        shoff, = struct.unpack_from(e + "Q", data, 0x28)
        shentsize, shnum, shstrndx = struct.unpack_from(e + "HHH", data, 0x3A)
    else:
        shoff, = struct.unpack_from(e + "I", data, 0x20)
        shentsize, shnum, shstrndx = struct.unpack_from(e + "HHH", data, 0x2E)
    heads = []
    for i in range(shnum):
        off = shoff + i * shentsize
        if is64:
            name, _typ, _flags, addr, offset, size = struct.unpack_from(e + "IIQQQQ", data, off)
        else:
            name, _typ, _flags, addr, offset, size = struct.unpack_from(e + "IIIIII", data, off)
        heads.append((name, addr, offset, size))
    strtab = heads[shstrndx]
    out = {}
    for name, addr, _offset, size in heads:
        start = strtab[2] + name
        end = data.index(b"\0", start)
        out[data[start:end].decode()] = (addr, size)
    return out


def crate_of(path):
    """The crate a source file belongs to."""
    m = re.search(r"/library/([a-z_\-]+)/", path)
    if m and ("/rustc/" in path or "/rustlib/src/rust/" in path):
        return m.group(1)
    m = re.search(r"index\.crates\.io-[^/]+/([A-Za-z0-9_\-]+?)-\d+\.\d+\.\d+[^/]*/", path)
    if m:
        return m.group(1)
    if path.startswith(os.path.join(HERE, "firmware") + "/"):
        return "firmware (main.rs)"
    if path.startswith(os.path.join(HERE, "src") + "/"):
        return "wsmachine-embedded (driver, heap)"
    if path.startswith(os.path.join(REPO, "src") + "/"):
        return "wsmachine"
    return "other: " + path


def text_by_crate(path, text_range):
    """{crate: bytes of .text}, or None without llvm-dwarfdump."""
    tool = shutil.which("llvm-dwarfdump") or shutil.which("llvm-dwarfdump-14")
    if not tool:
        return None
    info = subprocess.run([tool, "--debug-info", "--recurse-depth=0", path],
                          capture_output=True, text=True, check=True).stdout
    comp_dirs = {}
    stmt = None
    for line in info.splitlines():
        m = re.search(r"DW_AT_stmt_list\s+\((0x[0-9a-f]+)\)", line)
        if m:
            stmt = int(m.group(1), 16)
        m = re.search(r'DW_AT_comp_dir\s+\("(.*)"\)', line)
        if m and stmt is not None:
            comp_dirs[stmt] = m.group(1)
    lines = subprocess.run([tool, "--debug-line", path],
                           capture_output=True, text=True, check=True).stdout
    lo, hi = text_range
    sizes = {}
    comp, dirs, files, prev = "", {}, {}, None
    cur_file, skip = None, False
    for line in lines.splitlines():
        m = re.match(r"debug_line\[(0x[0-9a-f]+)\]", line)
        if m:
            comp = comp_dirs.get(int(m.group(1), 16), "")
            dirs, files, prev = {0: comp}, {}, None
            continue
        m = re.match(r'include_directories\[\s*(\d+)\] = "(.*)"', line)
        if m:
            dirs[int(m.group(1))] = m.group(2)
            continue
        m = re.match(r"file_names\[\s*(\d+)\]:", line)
        if m:
            cur_file = int(m.group(1))
            continue
        m = re.match(r'\s+name: "(.*)"', line)
        if m and cur_file is not None:
            files[cur_file] = [m.group(1), 0]
            continue
        m = re.match(r"\s+dir_index: (\d+)", line)
        if m and cur_file is not None:
            files[cur_file][1] = int(m.group(1))
            continue
        m = re.match(r"0x([0-9a-f]+)\s+\d+\s+\d+\s+(\d+)\s.*", line)
        if m:
            addr, fidx = int(m.group(1), 16), int(m.group(2))
            if prev is None:
                # A sequence of a function the linker dropped starts at 0:
                # it would overlap real code, so it is skipped whole.
                skip = addr < lo
            if prev is not None and not skip:
                paddr, pfile = prev
                a, b = max(paddr, lo), min(addr, hi)
                if b > a:
                    name, d = files.get(pfile, ["?", 0])
                    full = name if name.startswith("/") else os.path.join(dirs.get(d, comp) or comp, name)
                    if not full.startswith("/"):
                        full = os.path.join(comp, full)
                    crate = crate_of(os.path.normpath(full))
                    sizes[crate] = sizes.get(crate, 0) + (b - a)
            prev = None if "end_sequence" in line else (addr, fidx)
    counted = sum(sizes.values())
    sizes["(no line info)"] = (hi - lo) - counted
    return sizes


def main():
    if len(sys.argv) not in (2, 3):
        raise SystemExit(__doc__)
    elves = sys.argv[1:]
    names = [os.path.basename(p) for p in elves]
    secs = [sections(p) for p in elves]
    width = max(14, *(len(n) + 2 for n in names))
    head = f"{'section (bytes)':<34}" + "".join(f"{n:>{width}}" for n in names)
    if len(elves) == 2:
        head += f"{'added':>{width}}"
    print(head)
    for s in SECTIONS:
        vals = [sec.get(s, (0, 0))[1] for sec in secs]
        row = f"{s:<34}" + "".join(f"{v:>{width}}" for v in vals)
        if len(vals) == 2:
            row += f"{vals[0] - vals[1]:>{width}}"
        print(row)
    flash = [sum(sec.get(s, (0, 0))[1] for s in (".vector_table", ".text", ".rodata", ".data")) for sec in secs]
    row = f"{'flash (vectors+text+rodata+data)':<34}" + "".join(f"{v:>{width}}" for v in flash)
    if len(flash) == 2:
        row += f"{flash[0] - flash[1]:>{width}}"
    print(row)

    by_crate = []
    for p, sec in zip(elves, secs):
        addr, size = sec.get(".text", (0, 0))
        by_crate.append(text_by_crate(p, (addr, addr + size)))
    if by_crate[0] is None:
        print("\n.text by crate: not measured (llvm-dwarfdump not found; apt-get install llvm)")
        return
    print()
    print(f"{'.text by crate (bytes)':<34}" + "".join(f"{n:>{width}}" for n in names)
          + (f"{'added':>{width}}" if len(elves) == 2 else ""))
    crates = sorted(set().union(*[c.keys() for c in by_crate]), key=lambda c: -by_crate[0].get(c, 0))
    for c in crates:
        vals = [b.get(c, 0) for b in by_crate]
        row = f"{c:<34}" + "".join(f"{v:>{width}}" for v in vals)
        if len(vals) == 2:
            row += f"{vals[0] - vals[1]:>{width}}"
        print(row)
    deps = ["wsmachine", "bytes", "httparse", "sha1_smol", "base64", "simdutf8"]
    own = by_crate[0].get("wsmachine", 0)
    with_deps = sum(by_crate[0].get(c, 0) for c in deps)
    print(f"\nwsmachine's own code: {own} B of .text; with its dependencies ({', '.join(deps[1:])}): {with_deps} B")


if __name__ == "__main__":
    main()
