"""Route path templates reduced to segments, and an index from request paths to domains."""

from __future__ import annotations

from collections.abc import Iterable

PARAM = "{}"  # one path segment, whatever its converter
REST = "{...}"  # a ``{name:path}`` parameter: the rest of the path


def template_segments(path: str) -> tuple[str, ...]:
    """``/tenants/{tenant_id}/items/{rest:path}`` -> ``("tenants", "{}", "items", "{...}")``."""
    segments = []
    for segment in path.split("/")[1:]:
        if ":path}" in segment:
            segments.append(REST)
            break
        segments.append(PARAM if "{" in segment else segment)
    return tuple(segments)


def may_overlap(a: tuple[str, ...], b: tuple[str, ...]) -> bool:
    """Whether some request path could match both templates."""
    for left, right in zip(a, b, strict=False):
        if REST in (left, right):
            return True
        if left == right:
            continue
        if PARAM in (left, right) and "" not in (left, right):
            continue
        return False
    if len(a) == len(b):
        return True
    longer = a if len(a) > len(b) else b
    return longer[min(len(a), len(b))] == REST


class _Node:
    __slots__ = ("literal", "owner", "param", "rest")

    def __init__(self) -> None:
        self.literal: dict[str, _Node] = {}
        self.param: _Node | None = None
        self.rest: str | None = None
        self.owner: str | None = None

    def find(self, segments: list[str], index: int) -> str | None:
        if index == len(segments):
            return self.owner or self.rest
        segment = segments[index]
        child = self.literal.get(segment)
        if child is not None and (owner := child.find(segments, index + 1)) is not None:
            return owner
        if segment and self.param is not None and (owner := self.param.find(segments, index + 1)) is not None:
            return owner
        return self.rest


class PathIndex:
    """Maps a request path to the domain whose routes can serve it, in time independent
    of the number of domains (a walk down a segment trie)."""

    def __init__(self, routes: Iterable[tuple[str, str]]) -> None:
        self._root = _Node()
        for path, owner in routes:
            self._add(template_segments(path), owner)

    def _add(self, segments: tuple[str, ...], owner: str) -> None:
        node = self._root
        for segment in segments:
            if segment == REST:
                node.rest = node.rest or owner
                return
            if segment == PARAM:
                node.param = node.param or _Node()
                node = node.param
            else:
                node = node.literal.setdefault(segment, _Node())
        node.owner = node.owner or owner

    def lookup(self, path: str) -> str | None:
        return self._root.find(path.split("/")[1:], 0)
