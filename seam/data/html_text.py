"""HTML -> readable text (light Markdown), with only the standard library's `html.parser`.

Paragraphs become blank-line separated blocks, ``<pre>`` becomes a fenced code block kept verbatim,
inline ``<code>`` becomes `backticks`, lists become ``- item`` / ``1. item`` (nested lists
indented), blockquotes ``> ``, headings ``# ``, links ``text (url)``, images ``alt (src)``, table
cells ``a | b``. Entities are unescaped. Emphasis is dropped (plain words read better to a model).

>>> html_to_text('<p>Use <code>x &lt; 1</code>, see <a href="https://a.b">docs</a>.</p><ul><li>one<li>two</ul>')
'Use `x < 1`, see docs (https://a.b).\\n\\n- one\\n- two'
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

_PARA = "\x00P"  # paragraph break (blank line)
_LINE = "\x00L"  # line break (<br>: two in a row make a blank line)
_NEWLINE = "\x00N"  # "start on a new line" (list items, table rows): several still make one
_BREAKS = re.compile(r"[ \t]*(?:\x00[PLN][ \t]*)+")
_SPACES = re.compile(r"\s+")
_BLOCK = {
    "p", "div", "section", "article", "header", "footer", "table", "dl", "dt", "dd", "figure",
    "figcaption", "details", "summary", "center", "form", "fieldset", "nav", "aside", "main",
}
_SKIP = {"script", "style", "head", "title", "template"}
_HEADINGS = {f"h{i}": i for i in range(1, 7)}


def _render(pieces: list[str]) -> str:
    """Join pieces, turning runs of break markers into '\\n' or '\\n\\n'."""

    def breaks(match: re.Match) -> str:
        marks = match.group(0)
        if _PARA in marks:
            return "\n\n"
        return "\n" * min(max(marks.count(_LINE), 1), 2)

    text = _BREAKS.sub(breaks, "".join(pieces))
    lines = [line.rstrip() for line in text.split("\n")]
    return "\n".join(lines).strip("\n").strip()


class _Frame:
    """An element whose content is rendered as a whole when it closes (li, a, pre, ...)."""

    __slots__ = ("tag", "pieces", "attrs", "marker")

    def __init__(self, tag: str, attrs: dict, marker: str = ""):
        self.tag, self.attrs, self.marker = tag, attrs, marker
        self.pieces: list[str] = []


class _Converter(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.frames: list[_Frame] = [_Frame("#root", {})]
        self.lists: list[list] = []  # [tag, next number]
        self.rows: list[int] = []  # cells seen in the current table row
        self.skip = 0
        self.pre = 0

    # -- output helpers
    @property
    def out(self) -> list[str]:
        return self.frames[-1].pieces

    def _open(self, tag: str, attrs: dict, marker: str = "") -> None:
        self.frames.append(_Frame(tag, attrs, marker))

    def _in_li(self) -> bool:
        return any(f.tag == "li" for f in self.frames)

    # -- parser callbacks
    def handle_starttag(self, tag, attrs):
        attrs = {k: (v or "") for k, v in attrs}
        if tag in _SKIP:
            self.skip += 1
            return
        if self.pre:
            if tag == "br":
                self.out.append("\n")
            return
        if tag in _BLOCK:
            self.out.append(_PARA)
            if tag == "table":
                self.rows = []
        elif tag == "br":
            self.out.append(_LINE)
        elif tag == "hr":
            self.out.extend([_PARA, "---", _PARA])
        elif tag == "pre":
            self.out.append(_PARA)
            self._open("pre", attrs)
            self.pre += 1
        elif tag in ("ul", "ol"):
            self.out.append(_NEWLINE if self._in_li() else _PARA)
            start = attrs.get("start", "1")
            self.lists.append([tag, int(start) if start.isdigit() else 1])
        elif tag == "li":
            if self._top_li_depth() == len(self.lists):  # <li> closes an open sibling <li>
                self._close_frame()
            if self.lists and self.lists[-1][0] == "ol":
                marker = f"{self.lists[-1][1]}. "
                self.lists[-1][1] += 1
            else:
                marker = "- "
            self._open("li", {**attrs, "_depth": len(self.lists)}, marker)
        elif tag in ("blockquote", "a", "code") or tag in _HEADINGS:
            if tag == "blockquote" or tag in _HEADINGS:
                self.out.append(_PARA)
            self._open(tag, attrs)
        elif tag == "img":
            alt, src = attrs.get("alt", "").strip(), attrs.get("src", "").strip()
            self.out.append(f"{alt} ({src})" if alt and src else (alt or src))
        elif tag == "tr":
            self.out.append(_NEWLINE)
            self.rows.append(0)
        elif tag in ("td", "th"):
            if self.rows:
                if self.rows[-1]:
                    self.out.append(" | ")
                self.rows[-1] += 1

    def handle_endtag(self, tag):
        if tag in _SKIP:
            self.skip = max(0, self.skip - 1)
            return
        if self.pre and tag != "pre":
            return
        if tag in _BLOCK:
            self.out.append(_PARA)
        elif tag in ("ul", "ol"):
            while self._top_li_depth() == len(self.lists):  # close items left open
                self._close_frame()
            if self.lists:
                self.lists.pop()
            self.out.append(_NEWLINE if self._in_li() else _PARA)
        elif tag == "tr" and self.rows:
            self.rows.pop()
        elif any(f.tag == tag for f in self.frames[1:]):
            while self.frames[-1].tag != tag:
                self._close_frame()
            self._close_frame()

    def _top_li_depth(self) -> int | None:
        top = self.frames[-1]
        return top.attrs["_depth"] if top.tag == "li" else None

    def handle_data(self, data):
        if self.skip:
            return
        if self.pre:
            self.out.append(data)
        else:
            self.out.append(_SPACES.sub(" ", data))

    # -- closing a frame renders it into its parent
    def _close_frame(self) -> None:
        frame = self.frames.pop()
        parent = self.frames[-1].pieces
        if frame.tag == "pre":
            self.pre -= 1
            code = "".join(frame.pieces).strip("\n").rstrip()
            if code:
                parent.extend([_PARA, "```\n" + code + "\n```", _PARA])
            return
        text = _render(frame.pieces)
        if frame.tag == "code":
            if text:
                parent.append(f"`{text}`")
        elif frame.tag == "a":
            href = frame.attrs.get("href", "").strip()
            if href and text and href != text and not href.startswith(("#", "javascript:")):
                parent.append(f"{text} ({href})")
            else:
                parent.append(text or href)
        elif frame.tag == "li":
            pad = " " * len(frame.marker)
            lines = text.split("\n") if text else [""]
            item = "\n".join([frame.marker + lines[0]] + [pad + ln if ln else "" for ln in lines[1:]])
            parent.extend([_NEWLINE, item.rstrip(), _NEWLINE])
        elif frame.tag == "blockquote":
            quoted = "\n".join(("> " + ln) if ln else ">" for ln in text.split("\n"))
            parent.extend([_PARA, quoted, _PARA])
        elif frame.tag in _HEADINGS:
            parent.extend([_PARA, "#" * _HEADINGS[frame.tag] + " " + text.replace("\n", " "), _PARA])
        else:  # pragma: no cover - every opened tag is handled above
            parent.append(text)

    def result(self) -> str:
        while len(self.frames) > 1:
            self._close_frame()
        return _render(self.frames[0].pieces)


def html_to_text(html: str) -> str:
    """Convert an HTML fragment (a StackExchange post body) to readable text."""
    if not html:
        return ""
    parser = _Converter()
    parser.feed(html)
    parser.close()
    return parser.result()
