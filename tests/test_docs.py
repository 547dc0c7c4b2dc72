"""Every code block in README.md and docs/*.md runs, and prints what the docs show (the
convention is in docs/README.md); the harness itself fails on broken, wrong or unmarked blocks."""
from __future__ import annotations

import ast
import contextlib
import io
import os
import re
import shutil
import subprocess
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SKIP = re.compile(r"#\s*not tested:\s*\S")  # the visible marker, first line of a block
EXPECT = re.compile(r"#\s*->\s?(.*)$")  # `statement  # -> what it prints`
SHELL = {"bash", "sh", "shell", "zsh"}
FENCE = re.compile(r"^(\s*)(```+|~~~+)\s*([^\s`]*)")


@dataclass
class Block:
    """A fenced block: its language, first content line (1-based) and text; `output` is the
    ```text block right after a python block."""

    lang: str
    line: int
    text: str
    output: Block | None = None

    @property
    def skipped(self) -> bool:
        return bool(SKIP.match(self.text.lstrip()))


def parse(text: str) -> list[Block]:
    """The fenced blocks of a Markdown text, each ```text output attached to the python block before it."""
    lines, blocks, i, last_end = text.splitlines(), [], 0, None
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, lang = len(m.group(1)), m.group(2), m.group(3).lower()
        j = i + 1
        while j < len(lines) and not re.match(rf"^\s*{re.escape(fence[0])}{{{len(fence)},}}\s*$", lines[j]):
            j += 1
        if j == len(lines):
            raise AssertionError(f"line {i + 1}: the ``` block is never closed")
        block = Block(lang, i + 2, "\n".join(line[indent:] for line in lines[i + 1:j]))
        follows = last_end is not None and all(not line.strip() for line in lines[last_end + 1:i])
        if lang == "text" and follows and blocks and blocks[-1].lang == "python" and blocks[-1].output is None:
            blocks[-1].output = block
        else:
            blocks.append(block)
        last_end, i = j, j + 1
    return blocks


def matches(expected: str, got: str) -> bool:
    """Equal after trimming trailing spaces and blank edge lines; `...` in expected matches any text."""
    def clean(s):
        return "\n".join(line.rstrip() for line in s.strip("\n").splitlines()).strip()
    pattern = ".*?".join(re.escape(part) for part in clean(expected).split("..."))
    return re.fullmatch(pattern, clean(got), re.S) is not None


def _mismatch(where, expected, got) -> AssertionError:
    return AssertionError(f"{where}: the docs show\n{expected}\nbut it printed\n{got}")


def run_python(block: Block, path: Path, namespace: dict) -> None:
    """Run a python block statement by statement, checking each `# -> ` and the output block."""
    name = f"{path}:{block.line}"
    source = "\n" * (block.line - 1) + block.text + "\n"  # line numbers (and tracebacks) as in the Markdown file
    tree = ast.parse(source, str(path))
    src_lines = source.splitlines()
    pending = {n for n, line in enumerate(src_lines, 1) if EXPECT.search(line)}
    printed = io.StringIO()
    for stmt in tree.body:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            if isinstance(stmt, ast.Expr):
                value = eval(compile(ast.Expression(stmt.value), str(path), "eval"), namespace)
                if value is not None and stmt.end_lineno in pending:
                    print(repr(value))
            else:
                exec(compile(ast.Module([stmt], []), str(path), "exec"), namespace)
        printed.write(out.getvalue())
        if stmt.end_lineno in pending:
            pending.discard(stmt.end_lineno)
            expected = EXPECT.search(src_lines[stmt.end_lineno - 1]).group(1)
            if not matches(expected, out.getvalue()):
                raise _mismatch(f"{path}:{stmt.end_lineno}", expected, out.getvalue())
    if pending:
        raise AssertionError(f"{path}:{min(pending)}: a `# -> ` mark must end a statement")
    if block.output is not None and not matches(block.output.text, printed.getvalue()):
        raise _mismatch(f"{name} (its output block at line {block.output.line})", block.output.text,
                        printed.getvalue())


def run_console(block: Block, path: Path, folder: Path) -> None:
    """Run each `$ command` in bash in `folder` and compare its output (stdout and stderr) with the lines below it."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "MPLBACKEND": "Agg", "XDG_CACHE_HOME": str(folder / "cache")}
    env.pop("TINYGRAD_CNN_DATA", None)
    commands = []
    for n, line in enumerate(block.text.splitlines(), block.line):
        if line.startswith("$ "):
            commands.append((n, line[2:], []))
        elif commands:
            commands[-1][2].append(line)
        elif line.strip():
            raise AssertionError(f"{path}:{n}: a console block starts with a `$ command` line")
    for n, command, expected in commands:
        proc = subprocess.run(["bash", "-c", command], cwd=folder, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, timeout=120)
        if not matches("\n".join(expected), proc.stdout):
            raise _mismatch(f"{path}:{n}: $ {command}", "\n".join(expected), proc.stdout)


def console_folder(tmp: Path) -> Path:
    """A folder to run console commands in: a copy of examples/ and an empty docs/."""
    folder = tmp / "console"
    shutil.copytree(ROOT / "examples", folder / "examples", ignore=shutil.ignore_patterns("__pycache__"))
    (folder / "docs").mkdir()
    return folder


def run_markdown(path: Path, tmp: Path) -> int:
    """Run the blocks of one Markdown file in `tmp` (the current folder); returns how many ran."""
    namespace, ran, folder = {"__name__": "__main__"}, 0, None
    for block in parse(path.read_text()):
        if block.lang == "":
            raise AssertionError(f"{path}:{block.line - 1}: an untagged ``` block; tag it python, console, bash or "
                                 "text (docs/README.md)")
        if block.skipped:
            continue
        if block.lang in SHELL:
            raise AssertionError(f"{path}:{block.line - 1}: a {block.lang} block runs nothing in the docs test; start "
                                 "it with `# not tested: <why>`, or make it a console block (docs/README.md)")
        if block.lang == "python":
            run_python(block, path, namespace)
        elif block.lang == "console":
            folder = folder or console_folder(tmp)
            run_console(block, path, folder)
        else:
            continue
        ran += 1
    return ran


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    return tmp_path


@pytest.mark.parametrize("path", DOCS, ids=[str(p.relative_to(ROOT)) for p in DOCS])
def test_the_docs_code_runs_and_prints_what_they_show(path, in_tmp):
    run_markdown(path, in_tmp)


# ----------------------------------------------------------------------------- the harness itself


def doc(tmp, text) -> Path:
    path = tmp / "doc.md"
    path.write_text(text)
    return path


GOOD = '''# A page

```python
import numpy as np
x = np.arange(6).reshape(2, 3)
x.shape  # -> (2, 3)
print(x.sum())  # -> 15
y = x * 2
```

Later blocks see what earlier ones made:

```python
print(y.tolist())
print("took 0.123 s")
```

```text
[[0, 2, 4], [6, 8, 10]]
took ... s
```

```bash
# not tested: trains for minutes
bash scripts/train.sh
```

```python
# not tested: needs your own data
raise RuntimeError("never run")
```

```console
$ python -c "print(2 + 3)"
5
```

```json
{"not": "code"}
```
'''


def test_harness_runs_a_good_page(in_tmp):
    assert run_markdown(doc(in_tmp, GOOD), in_tmp) == 3


@pytest.mark.parametrize("broken, message", [
    ("x.shape  # -> (2, 3)", r"doc\.md:6: the docs show\n\(2, 4\)\nbut it printed\n\(2, 3\)"),
    ("print(x.sum())  # -> 15", r"doc\.md:7: the docs show\n16\nbut it printed\n15"),
    ("print(y.tolist())", r"doc\.md:14 \(its output block at line 19\): the docs show\n\[\[0, 2, 4\], \[6, 8, 99\]\]"),
    ('raise RuntimeError("never run")', None),
    ('$ python -c "print(2 + 3)"', r"doc\.md:\d+: \$ python -c .* the docs show\n6\nbut it printed\n5"),
    ("# not tested: trains for minutes\n", r"a bash block runs nothing in the docs test"),
    ("```json", r"an untagged ``` block"),
])
def test_harness_fails_when_a_block_breaks(in_tmp, broken, message):
    text = GOOD
    if broken.endswith("# -> (2, 3)"):
        text = text.replace("# -> (2, 3)", "# -> (2, 4)")
    elif broken.endswith("# -> 15"):
        text = text.replace("# -> 15", "# -> 16")
    elif broken == "print(y.tolist())":
        text = text.replace("[[0, 2, 4], [6, 8, 10]]", "[[0, 2, 4], [6, 8, 99]]")
    elif broken.startswith("raise"):
        text = text.replace("# not tested: needs your own data\n", "")
    elif broken.startswith("$"):
        text = text.replace("5\n```", "6\n```")
    elif broken.startswith("# not tested"):
        text = text.replace(broken, "")
    else:
        text = text.replace(broken, "```")
    if message is None:
        with pytest.raises(RuntimeError, match="never run") as info:
            run_markdown(doc(in_tmp, text), in_tmp)
        frames = traceback.extract_tb(info.tb)
        assert (frames[-1].filename, frames[-1].lineno) == (str(in_tmp / "doc.md"), 29)  # the page's own line
        assert frames[-1].line == 'raise RuntimeError("never run")'
    else:
        with pytest.raises(AssertionError, match=message):
            run_markdown(doc(in_tmp, text), in_tmp)


def test_harness_marks_must_end_a_statement_and_blocks_must_close(in_tmp):
    with pytest.raises(AssertionError, match="must end a statement"):
        run_markdown(doc(in_tmp, "```python\nx = [1,  # -> 1\n     2]\n```\n"), in_tmp)
    with pytest.raises(AssertionError, match="never closed"):
        run_markdown(doc(in_tmp, "```python\nx = 1\n"), in_tmp)
