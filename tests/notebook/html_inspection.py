"""Reading HTML the way a browser would (tags and attributes that would be live), for the safety tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

from miniagents.notebook.assets import static_stylesheet


@dataclass
class LiveMarkup:
    """The elements and attributes an HTML string would create in a page."""

    tags: list[str] = field(default_factory=list)
    attributes: list[tuple[str, str, str]] = field(default_factory=list)  # (tag, name, value)

    @property
    def event_handlers(self) -> list[tuple[str, str, str]]:
        return [attribute for attribute in self.attributes if attribute[1].startswith("on")]

    @property
    def urls(self) -> list[str]:
        return [value for _, name, value in self.attributes if name in ("href", "src", "action", "formaction")]


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.markup = LiveMarkup()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.markup.tags.append(tag)
        self.markup.attributes.extend((tag, name.lower(), value or "") for name, value in attrs)


def live_markup(html: str) -> LiveMarkup:
    """Parse `html` and list what would be live in the page."""
    collector = _Collector()
    collector.feed(html)
    collector.close()
    return collector.markup


def without_own_stylesheet(html: str) -> str:
    """`html` without the stylesheet a widget's static HTML starts with (MiniAgents' own, not model text)."""
    own = f"<style>{static_stylesheet()}</style>"
    return html[len(own) :] if html.startswith(own) else html


def assert_inert(html: str) -> None:
    """
    No script, no embedded content, no style, no event handler attribute, no URL other than
    http(s)/mailto/relative (a widget's own leading stylesheet aside).
    """
    markup = live_markup(without_own_stylesheet(html))
    dangerous = {"script", "img", "iframe", "object", "embed", "svg", "math", "style", "link", "meta", "base", "form"}
    assert not dangerous.intersection(markup.tags), markup.tags
    assert not markup.event_handlers, markup.event_handlers
    for url in markup.urls:
        scheme = url.split(":", 1)[0].strip().lower() if ":" in url.split("/", 1)[0] else ""
        assert scheme in ("", "http", "https", "mailto"), url


class _Elements(HTMLParser):
    """Every element of an HTML string as [tag, class, text inside it, attributes], in document order."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.open: list[list[Any]] = []
        self.found: list[list[Any]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        entry = [tag, dict(attrs).get("class") or "", "", dict(attrs)]
        self.open.append(entry)
        self.found.append(entry)

    def handle_endtag(self, tag: str) -> None:
        while self.open and self.open.pop()[0] != tag:
            pass

    def handle_data(self, data: str) -> None:
        for entry in self.open:
            entry[2] += data


def elements(html: str, css_class: str) -> list[tuple[str, str, dict[str, str | None]]]:
    """(tag, text, attributes) of each element of `html` having `css_class`."""
    parser = _Elements()
    parser.feed(without_own_stylesheet(html))
    parser.close()
    return [(tag, text, attrs) for tag, classes, text, attrs in parser.found if css_class in classes.split()]
