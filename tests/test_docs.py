"""The docs stay true to the code.

* every `seam` command and subcommand (walked from the real argparse parser) is documented in
  README.md or docs/*.md;
* every `seam ...` line in a fenced code block (and every inline `seam ...` code span) names a
  real command and only flags that command's parser accepts (values are not checked except
  against a flag's `choices`; placeholders such as DIR or auto|cpu are fine);
* every relative link (and `#anchor`) points at an existing file (and heading);
* every repository path the docs name (`jobs/kinds/score.py`, ...) exists;
* every project import in a docs Python block imports;
* the README's Python API example runs against tiny random models.

Each failure names the file and line, e.g. ``docs/jobs.md:12: seam worker: no flag --bogus``.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from seam.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PROJECT_PACKAGES = ("seam", "db", "jobs", "app")
REPO_DIRS = ("seam", "db", "jobs", "app", "pages", "tests", "benchmarks", "scripts", "docs", "assets")

FENCE = re.compile(r"^\s*(```|~~~)\s*([\w+-]*)")
INLINE_CODE = re.compile(r"(?<!`)`([^`]+)`(?!`)")  # inside a paragraph, so a span may wrap a line
SEPARATORS = {"|", "||", "&&", ";", "&", "(", ")"}
REDIRECTS = {">", ">>", "<", "2>", "2>&1", "&>"}
STOP_WORDS = {"...", "…"}


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


# ------------------------------------------------------------------------------------------- the CLI


@dataclass
class Command:
    """One node of the `seam` command tree."""

    path: tuple[str, ...]
    parser: argparse.ArgumentParser
    subcommands: dict[str, Command] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return " ".join(("seam", *self.path))

    @property
    def options(self) -> dict[str, argparse.Action]:
        return self.parser._option_string_actions  # noqa: SLF001 - argparse keeps no public view

    @property
    def positionals(self) -> list[argparse.Action]:
        return [a for a in self.parser._actions  # noqa: SLF001
                if not a.option_strings and not isinstance(a, argparse._SubParsersAction)]  # noqa: SLF001


def command_tree(parser: argparse.ArgumentParser | None = None, path: tuple[str, ...] = ()) -> Command:
    node = Command(path, parser or build_parser())
    for action in node.parser._actions:  # noqa: SLF001
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            for name, sub in action.choices.items():
                node.subcommands[name] = command_tree(sub, (*path, name))
    return node


def all_commands(node: Command) -> list[Command]:
    out = [node] if node.path else []
    for sub in node.subcommands.values():
        out.extend(all_commands(sub))
    return out


TREE = command_tree()


# ----------------------------------------------------------------------------- reading the markdown


@dataclass
class Doc:
    path: Path
    lines: list[str]
    code: list[tuple[int, str, str]]  # (line number, fence language, text) of fenced lines
    prose: list[tuple[int, str]]  # (line number, text) outside fences

    @classmethod
    def read(cls, path: Path) -> Doc:
        lines = path.read_text(encoding="utf-8").splitlines()
        code, prose, fence, lang = [], [], None, ""
        for n, line in enumerate(lines, 1):
            m = FENCE.match(line)
            if m and (fence is None or m.group(1) == fence):
                fence, lang = (m.group(1), m.group(2).lower()) if fence is None else (None, "")
            elif fence:
                code.append((n, lang, line))
            else:
                prose.append((n, line))
        return cls(path, lines, code, prose)

    @property
    def name(self) -> str:
        return rel(self.path)

    def paragraphs(self) -> list[tuple[int, str]]:
        """(first line number, text) of each run of non-blank prose lines."""
        out: list[tuple[int, str]] = []
        last = -2
        for n, line in self.prose:
            if not line.strip():
                last = -2
                continue
            if n == last + 1:
                out[-1] = (out[-1][0], out[-1][1] + "\n" + line)
            else:
                out.append((n, line))
            last = n
        return out

    def inline_code(self) -> list[tuple[int, str]]:
        """(line number, text) of each inline code span, a wrapped span joined with a space."""
        return [(start + para[:m.start()].count("\n"), " ".join(m.group(1).split()))
                for start, para in self.paragraphs() for m in INLINE_CODE.finditer(para)]

    def python_blocks(self) -> list[tuple[int, str]]:
        """(first line number, source) of each ```python block."""
        blocks: list[tuple[int, str]] = []
        last = -2
        for n, lang, line in self.code:
            if lang not in ("python", "py"):
                continue
            if n != last + 1:
                blocks.append((n, ""))
            start, src = blocks[-1]
            blocks[-1] = (start, src + line + "\n")
            last = n
        return blocks


DOCS = {rel(p): Doc.read(p) for p in DOC_FILES}


# -------------------------------------------------------------------------------- seam invocations


def shell_lines(doc: Doc) -> list[tuple[int, str]]:
    """Logical lines of the shell-ish fenced blocks: `\\` continuations joined, and a line that only
    continues a `seam` synopsis (indented, starting with `[` or `-`) appended to it."""
    out: list[tuple[int, str]] = []
    pending: tuple[int, str] | None = None
    last_lang, last_n = None, -2
    for n, lang, line in doc.code:
        if lang in ("python", "py", "json", "yaml", "toml", "sql"):
            continue
        if pending is not None:
            pending = (pending[0], pending[1] + " " + line.strip())
        else:
            stripped = line.strip()
            if (out and n == last_n + 1 and lang == last_lang and line[:1].isspace() and stripped[:1] in "[-"
                    and is_seam_line(out[-1][1])):
                out[-1] = (out[-1][0], out[-1][1] + " " + stripped)
                last_n = n
                continue
            pending = (n, line)
        if pending[1].rstrip().endswith("\\"):
            pending = (pending[0], pending[1].rstrip()[:-1])
        else:
            out.append(pending)
            pending = None
        last_lang, last_n = lang, n
    if pending is not None:
        out.append(pending)
    return out


def is_seam_line(text: str) -> bool:
    return bool(re.search(r"(^|[\s/$(])seam(\s|$)", text))


def tokens_of(text: str) -> list[str]:
    """Shell words; `a|b` stays one word (a placeholder such as auto|cpu), a spaced `|` separates."""
    out: list[str] = []
    for tok in shlex.split(text, comments=True):
        if len(tok) > 1 and tok.endswith(";"):
            out.extend([tok[:-1], ";"])
        else:
            out.append(tok)
    return out


def seam_invocations(tokens: list[str]) -> list[list[str]]:
    """The argument lists of every `seam` command in a tokenised shell line."""
    commands: list[list[str]] = [[]]
    skip_next = False
    for tok in tokens:
        if skip_next:
            skip_next = False
            continue
        if tok in SEPARATORS:
            commands.append([])
        elif tok in REDIRECTS or re.fullmatch(r"\d?>>?|&>", tok):
            skip_next = True
        else:
            commands[-1].append(tok)
    out = []
    for cmd in commands:
        words = list(cmd)
        while words and (re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", words[0]) or words[0] in ("time", "nice", "env",
                                                                                                "exec", "$")):
            words.pop(0)
        if not words:
            continue
        head = words[0]
        if head == "seam" or head.endswith("/seam"):
            out.append(words[1:])
        elif re.fullmatch(r"(.*/)?python[0-9.]*|\$\(PY\)", head) and words[1:3] == ["-m", "seam"]:
            out.append(words[3:])
    return out


def _expand(token: str) -> list[str]:
    """`{a,b}` and `a|b` -> [a, b]; anything else -> [token]."""
    if token.startswith("{") and token.endswith("}"):
        return [t.strip() for t in token[1:-1].split(",") if t.strip()]
    return [t for t in token.split("|") if t]


def _is_placeholder(value: str) -> bool:
    return (not value or value.isupper() or any(c in value for c in "<>{}$*…") or value in STOP_WORDS
            or bool(re.fullmatch(r"[A-Z][A-Z0-9_:./-]*", value)))


def _check_choices(action: argparse.Action, value: str, where: str) -> list[str]:
    if not action.choices or _is_placeholder(value):
        return []
    bad = [v for v in value.split("|") if v and v not in action.choices and not _is_placeholder(v)]
    return [f"{where}: {v!r} is not a choice of {'/'.join(action.option_strings) or action.dest} "
            f"({', '.join(map(str, action.choices))})" for v in bad]


def check_invocation(args: list[str], node: Command = TREE) -> list[str]:
    """Problems with one `seam` invocation: unknown commands, unknown flags, values outside choices."""
    problems: list[str] = []
    positional = 0
    i = 0
    while i < len(args):
        tok = args[i].strip("[]")
        i += 1
        if not tok:
            continue
        if tok in STOP_WORDS:  # `seam score ... --data FILE`: the flags after it are still checked
            if node.subcommands:
                break
            continue
        if tok.startswith("-") and len(tok) > 1 and not re.match(r"-\d", tok):
            names = tok.split("=", 1)[0].split("|")
            action = None
            for name in names:
                if name not in node.options:
                    problems.append(f"{node.name}: no flag {name} (its flags: "
                                    f"{', '.join(sorted(o for o in node.options if o.startswith('--')))})")
                else:
                    action = node.options[name]
            if action is None:
                continue
            if "=" in tok:  # --flag=value
                problems.extend(_check_choices(action, tok.split("=", 1)[1], node.name))
                continue
            nargs = action.nargs
            if nargs == 0:  # store_true, help, version, ...
                continue
            count = nargs if isinstance(nargs, int) else (1 if nargs in (None, "?") else None)
            taken = 0
            while i < len(args) and (count is None or taken < count):
                value = args[i].strip("[]")
                if (value.startswith("-") and len(value) > 1 and not re.match(r"-\d", value)) or value in STOP_WORDS:
                    break
                problems.extend(_check_choices(action, value, node.name))
                i += 1
                taken += 1
                if nargs == "?":
                    break
            continue
        if node.subcommands:
            if _is_placeholder(tok) and not tok.startswith("{"):
                break  # `seam COMMAND ...`
            names = _expand(tok)
            unknown = [n for n in names if n not in node.subcommands]
            for n in unknown:
                problems.append(f"{node.name}: no subcommand {n!r} (it has: {', '.join(node.subcommands)})")
            rest = args[i:]
            for n in names:
                if n in node.subcommands:
                    problems.extend(check_invocation(rest, node.subcommands[n]))
            return problems
        actions = node.positionals
        if positional < len(actions):
            for value in _expand(tok):
                problems.extend(_check_choices(actions[positional], value, node.name))
        positional += 1
    return problems


def invocation_problems(doc: Doc) -> list[str]:
    problems = []
    spans = shell_lines(doc) + [(n, text) for n, text in doc.inline_code() if re.match(r"seam\s", text)]
    for n, text in spans:
        if not is_seam_line(text):
            continue
        try:
            tokens = tokens_of(text)
        except ValueError as exc:
            problems.append(f"{doc.name}:{n}: cannot split {text.strip()!r}: {exc}")
            continue
        for args in seam_invocations(tokens):
            problems.extend(f"{doc.name}:{n}: {p}" for p in check_invocation(args))
    return problems


# ----------------------------------------------------------------------------------------- links


LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REF_DEF = re.compile(r"^\s*\[[^\]]+\]:\s*<?(\S+?)>?(\s|$)")
HTML_LINK = re.compile(r"""<(?:a|img)\b[^>]*?\b(?:href|src)\s*=\s*["']([^"']+)["']""", re.I)


def slugs(doc: Doc) -> set[str]:
    """GitHub's heading anchors."""
    out: set[str] = set()
    for _, line in doc.prose:
        m = re.match(r"^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        base = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
        slug, k = base, 0
        while slug in out:
            k += 1
            slug = f"{base}-{k}"
        out.add(slug)
    return out


def link_problems(doc: Doc) -> list[str]:
    problems = []
    found: list[tuple[int, str]] = []
    for start, para in doc.paragraphs():
        text = INLINE_CODE.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), para)  # keep line numbers
        for m in [*LINK.finditer(text), *HTML_LINK.finditer(text)]:
            found.append((start + text[:m.start()].count("\n"), m.group(1)))
        for k, line in enumerate(text.split("\n")):
            m = REF_DEF.match(line)
            if m:
                found.append((start + k, m.group(1)))
    for n, target in found:
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # http:, https:, mailto:, ...
            continue
        path_part, _, anchor = target.partition("#")
        dest = (doc.path.parent / path_part).resolve() if path_part else doc.path
        if not dest.exists():
            problems.append(f"{doc.name}:{n}: link to {target!r}: {rel(dest)} does not exist")
            continue
        if anchor and dest.suffix == ".md":
            other = DOCS.get(rel(dest)) or Doc.read(dest)
            if anchor.lower() not in slugs(other):
                problems.append(f"{doc.name}:{n}: link to {target!r}: {rel(dest)} has no heading #{anchor}")
    return problems


REPO_PATH = re.compile(r"(?<![\w./~$-])((?:%s)/[\w./-]*[\w/])" % "|".join(REPO_DIRS))


def path_problems(doc: Doc) -> list[str]:
    """Repository paths named anywhere in the page (`jobs/kinds/score.py`, `tests/fixtures/`) exist."""
    problems = []
    for n, line in enumerate(doc.lines, 1):
        found = (m.group(1).rstrip("./") for m in REPO_PATH.finditer(line)
                 if line[m.end():m.end() + 1] not in ("<", "{", "*", "["))  # `jobs/kinds/<name>.py`: a pattern
        for path in dict.fromkeys(found):
            if not (ROOT / path).exists():
                problems.append(f"{doc.name}:{n}: {path} does not exist")
    return problems


def import_problems(doc: Doc) -> list[str]:
    problems = []
    for start, src in doc.python_blocks():
        try:
            tree = ast.parse(src)
        except SyntaxError as exc:
            problems.append(f"{doc.name}:{start + (exc.lineno or 1) - 1}: Python block does not parse: {exc.msg}")
            continue
        for node in ast.walk(tree):
            n = start + getattr(node, "lineno", 1) - 1
            if isinstance(node, ast.Import):
                mods = [(a.name, None) for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                mods = [(node.module, [a.name for a in node.names])]
            else:
                continue
            for module, names in mods:
                if module.split(".")[0] not in PROJECT_PACKAGES:
                    continue
                try:
                    mod = importlib.import_module(module)
                except ImportError as exc:
                    problems.append(f"{doc.name}:{n}: import {module}: {exc}")
                    continue
                for name in names or ():
                    if name != "*" and not hasattr(mod, name):
                        try:
                            importlib.import_module(f"{module}.{name}")
                        except ImportError:
                            problems.append(f"{doc.name}:{n}: {module} has no {name}")
    return problems


def _fail(problems: list[str]) -> None:
    if problems:
        pytest.fail("\n" + "\n".join(problems), pytrace=False)


# ------------------------------------------------------------------------------------------- tests


def undocumented_commands(text: str) -> list[str]:
    """Commands of the real parser that `text` never names (`seam train sft`, or `seam train {sft,rm}`,
    or `seam train sft|rm`)."""
    missing = []
    for cmd in all_commands(TREE):
        *parents, last = cmd.path
        head = r"\bseam" + "".join(rf"\s+{re.escape(p)}" for p in parents)
        name = rf"(?<![\w-]){re.escape(last)}(?![\w-])"
        alt = rf"(?:{re.escape(last)}(?![\w-])|\{{[^}}\s]*{name}[^}}\s]*\}}|[\w|-]*\|{name}|{re.escape(last)}\|)"
        if not re.search(rf"{head}\s+{alt}", text):
            missing.append(f"{cmd.name}: not named in README.md or docs/*.md (document it, e.g. `{cmd.name} --help`)")
    return missing


def test_every_command_and_subcommand_is_documented():
    _fail(undocumented_commands("\n".join("\n".join(d.lines) for d in DOCS.values())))


def test_the_command_check_sees_an_undocumented_command():
    text = "\n".join("\n".join(d.lines) for d in DOCS.values())
    assert undocumented_commands(text) == []
    hidden = re.sub(r"seam(\s+)worker", r"seam\1w0rker", text)
    assert undocumented_commands(hidden) == ["seam worker: not named in README.md or docs/*.md "
                                             "(document it, e.g. `seam worker --help`)"]
    assert undocumented_commands("seam train {sft,rm} and seam train ppo|merge") != []
    assert not [m for m in undocumented_commands("seam train {sft,rm} seam train ppo|merge")
                if m.startswith(("seam train sft:", "seam train rm:", "seam train ppo:", "seam train merge:"))]


@pytest.mark.parametrize("name", list(DOCS))
def test_seam_commands_in_docs_name_real_commands_and_flags(name):
    _fail(invocation_problems(DOCS[name]))


@pytest.mark.parametrize("name", list(DOCS))
def test_relative_links_point_to_existing_files(name):
    _fail(link_problems(DOCS[name]))


@pytest.mark.parametrize("name", list(DOCS))
def test_repository_paths_named_in_docs_exist(name):
    _fail(path_problems(DOCS[name]))


@pytest.mark.parametrize("name", list(DOCS))
def test_project_imports_in_python_blocks_resolve(name):
    _fail(import_problems(DOCS[name]))


def test_docs_index_lists_every_page():
    index = "\n".join(DOCS["docs/index.md"].lines)
    pages = [d for d in DOCS if d.startswith("docs/") and d != "docs/index.md"]
    missing = [f"docs/index.md: no link to {Path(p).name}" for p in pages if f"]({Path(p).name}" not in index]
    _fail(missing)


def test_the_checker_catches_bad_commands_flags_links_and_paths(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n"
        "\n"
        "```bash\n"
        "seam score --pm models/pm --rm models/rm --bogus-flag 3 \\\n"
        "           --out seam.jsonl\n"
        "seam negatives contrast --data rl.jsonl --out n.jsonl --band 0.8 0.9   # fine\n"
        "seam frobnicate --db DIR\n"
        "seam worker --db DIR [--backend local|rays]\n"
        "seam train {sft,rm,nope} --help\n"
        "```\n"
        "\n"
        "Run `seam serve --port 8600 --no-such-thing`; see [missing](nowhere.md), [top](#page),\n"
        "[gone](#no-such-heading) and `jobs/kinds/not_a_kind.py`.\n"
    )
    doc = Doc.read(page)
    problems = invocation_problems(doc) + link_problems(doc) + path_problems(doc)
    text = "\n".join(problems)
    assert f"{rel(page)}:4: seam score: no flag --bogus-flag" in text
    assert ":6:" not in text  # --band takes two values; a comment is not a flag
    assert f"{rel(page)}:7: seam: no subcommand 'frobnicate'" in text
    assert f"{rel(page)}:8: seam worker: 'rays' is not a choice of --backend" in text
    assert f"{rel(page)}:9: seam train: no subcommand 'nope'" in text
    assert f"{rel(page)}:12: seam serve: no flag --no-such-thing" in text
    assert f"{rel(page)}:12: link to 'nowhere.md'" in text and "#page" not in text
    assert f"{rel(page)}:13: link to '#no-such-heading'" in text
    assert f"{rel(page)}:13: jobs/kinds/not_a_kind.py does not exist" in text
    assert len(problems) == 8, text
    # and the real parser accepts what the checker accepts
    assert check_invocation(["worker", "--db", "DIR", "--backend", "ray", "--address", "HOST:PORT"]) == []
    assert check_invocation(["import", "hh", "x.jsonl.gz", "--out", "hh.jsonl"]) == []
    assert check_invocation(["import", "hhh", "x", "--out", "y"])  # KIND has choices


# ------------------------------------------------------------------------ the README's Python example


def readme_python_example() -> str:
    doc = DOCS["README.md"]
    blocks = doc.python_blocks()
    assert blocks, "README.md has no ```python block"
    start, src = blocks[0]
    assert len(src.strip().splitlines()) <= 14, f"README.md:{start}: the API example should stay about ten lines"
    return src


def test_readme_python_example_runs(tiny_models, tmp_path, monkeypatch, capsys):
    import json

    pm_dir, rm_dir = tiny_models
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "pm").symlink_to(pm_dir)
    (tmp_path / "models" / "rm").symlink_to(rm_dir)
    rows = [{"id": f"q{i}", "prompt": f"What is {i} plus {i}?", "chosen": f"{i} plus {i} is {2 * i}."} for i in range(10)]
    negs = [{"id": f"q{i}", "variant": v, "text": f"{i} plus {i} is {2 * i + k + 1}."}
            for i in range(10) for v in ("contrast", "llm") for k in range(2)]
    (tmp_path / "rl.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "negatives.jsonl").write_text("".join(json.dumps(r) + "\n" for r in negs))
    monkeypatch.chdir(tmp_path)
    scope: dict = {"__name__": "readme_example"}
    exec(compile(readme_python_example(), "README.md", "exec"), scope)  # noqa: S102 - our own README
    assert len(scope["scores"]) == 20 and set(scope["scores"]["variant"]) == {"contrast", "llm"}
    assert len(scope["kept"]) == 8  # 20% of 10 dropped
