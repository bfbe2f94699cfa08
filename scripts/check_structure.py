#!/usr/bin/env python3
"""The structure rules the code keeps (docs/design.md, "Modules"), checked:

  - no function in src/ is longer than 60 lines;
  - src/train.c, the training loop, stays under 250 lines;
  - the model's header names no MPI type or call (the model knows nothing of ranks).

Usage: check_structure.py [REPO]   (default: the repository holding this script)
Exit status 0 when every rule holds; otherwise 1, with one line per violation.
"""
import pathlib
import re
import sys

MAX_FUNCTION_LINES = 60
MAX_LOOP_LINES = 250


def strip(source):
    """Source with comments, strings and character literals blanked (lines kept)."""
    source = re.sub(r"/\*.*?\*/", lambda m: "\n" * m.group(0).count("\n"), source, flags=re.S)
    source = re.sub(r"//[^\n]*", "", source)
    source = re.sub(r'"(\\.|[^"\\\n])*"', '""', source)
    return re.sub(r"'(\\.|[^'\\\n])*'", "''", source)


def functions(path):
    """(name line, first line number, length) of each function defined in a C file."""
    lines = strip(path.read_text()).split("\n")
    depth, start = 0, None
    for i, line in enumerate(lines):
        for ch in line:
            if ch == "{":
                if depth == 0:
                    start = i
                    while start > 0 and not re.match(r"[A-Za-z_]", lines[start]):
                        start -= 1
                depth += 1
            elif ch == "}":
                depth -= 1
                if depth == 0 and start is not None:
                    head = lines[start]
                    body = "".join(lines[start:i + 1])
                    is_data = re.match(r"(static\s+)?(const\s+)?(typedef|struct|enum|union)\b", head) or "=" in head
                    if "(" in body and not is_data:
                        yield head.strip(), start + 1, i - start + 1
                    start = None


def main():
    repo = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else pathlib.Path(__file__).resolve().parent.parent)
    problems = []
    for path in sorted((repo / "src").rglob("*.c")):
        for head, line, length in functions(path):
            if length > MAX_FUNCTION_LINES:
                problems.append(f"{path.relative_to(repo)}:{line}: {length} lines (max {MAX_FUNCTION_LINES}): {head}")
    loop = repo / "src" / "train.c"
    n = len(loop.read_text().split("\n")) - 1
    if n >= MAX_LOOP_LINES:
        problems.append(f"src/train.c: {n} lines (max {MAX_LOOP_LINES - 1})")
    model_h = strip((repo / "include" / "nn" / "model.h").read_text())
    for word in sorted(set(re.findall(r"\bMPI\w*|\bmpi\w*", model_h))):
        problems.append(f"include/nn/model.h: names {word}")
    for p in problems:
        print(p)
    print(f"check_structure: {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
