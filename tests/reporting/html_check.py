"""A strict HTML well-formedness check for the reports (stdlib ``html.parser``)."""

from __future__ import annotations

from html.parser import HTMLParser

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class StrictHTML(HTMLParser):
    """Parses a document and records structure problems, text, tags and attributes.

    Every non-void element must be closed explicitly, in order (no optional end tags);
    attributes may not repeat; the document must end with no element open.
    """

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, tuple[int, int]]] = []
        self.problems: list[str] = []
        self.text: list[str] = []
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.doctype = False

    def handle_decl(self, decl: str) -> None:
        self.doctype = self.doctype or decl.lower() == "doctype html"

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = [a for a, _ in attrs]
        if len(names) != len(set(names)):
            self.problems.append(f"<{tag}> at {self.getpos()} repeats an attribute: {names}")
        self.elements.append((tag, dict(attrs)))
        if tag not in VOID:
            self.stack.append((tag, self.getpos()))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))
        if tag not in VOID:
            self.problems.append(f"self-closing non-void <{tag}/> at {self.getpos()}")

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            self.problems.append(f"end tag of void element </{tag}> at {self.getpos()}")
        elif not self.stack:
            self.problems.append(f"</{tag}> at {self.getpos()} closes nothing")
        elif self.stack[-1][0] != tag:
            open_tag, where = self.stack[-1]
            self.problems.append(f"</{tag}> at {self.getpos()} but <{open_tag}> from {where} is open")
        else:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse_strict(html: str) -> StrictHTML:
    """Parse ``html``; raise AssertionError listing every structural problem found."""
    parser = StrictHTML()
    parser.feed(html)
    parser.close()
    problems = list(parser.problems)
    problems += [f"<{tag}> from {where} is never closed" for tag, where in parser.stack]
    if not parser.doctype:
        problems.append("no <!DOCTYPE html>")
    assert not problems, "HTML is not well-formed:\n" + "\n".join(problems[:20])
    return parser


def table_rows(html: str, table_id: str) -> list[list[str]]:
    """Text of every body cell of the table with id ``table_id``, row by row."""

    class Rows(HTMLParser):
        def __init__(self) -> None:
            super().__init__(convert_charrefs=True)
            self.depth, self.in_body, self.rows, self.cell = 0, False, [], None

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            if tag == "table" and dict(attrs).get("id") == table_id:
                self.depth = 1
            elif self.depth and tag == "tbody":
                self.in_body = True
            elif self.in_body and tag == "tr":
                self.rows.append([])
            elif self.in_body and tag == "td":
                self.cell = []

        def handle_endtag(self, tag: str) -> None:
            if tag == "td" and self.cell is not None:
                self.rows[-1].append("".join(self.cell).strip())
                self.cell = None
            elif tag == "tbody":
                self.in_body = False
            elif tag == "table":
                self.depth = 0

        def handle_data(self, data: str) -> None:
            if self.cell is not None:
                self.cell.append(data)

    parser = Rows()
    parser.feed(html)
    return parser.rows
