"""Route path templates reduced to segments, and an index from request paths to domains."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

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


def segments_template(segments: tuple[str, ...]) -> str:
    """The inverse of ``template_segments``, up to the parameters' names and converters."""
    names = {PARAM: "{p}", REST: "{p:path}"}
    return "/" + "/".join(names.get(segment, segment) for segment in segments)


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

    def reduced(self) -> dict[str, list[str]]:
        """Each owner's templates for a smaller index that finds the same owner for every
        path one of the owner's routes can match (what a build stores, so that startup
        indexes one entry per domain rather than one per route).

        A branch that only one owner's routes reach becomes one ``/prefix/{p:path}`` entry,
        unless a parameter at a shallower level could also claim a path under it (the
        search would have backtracked to that parameter). A path under the branch that no
        route matches then finds the owner instead of nobody, and the owner's own route
        matching answers it as before."""
        reduced: dict[str, list[str]] = {}
        for segments, owner in _reduced(self._root, (), exclusive=True):
            reduced.setdefault(owner, []).append(segments_template(segments))
        return reduced


def _reduced(node: _Node, segments: tuple[str, ...], *, exclusive: bool) -> Iterator[tuple[tuple[str, ...], str]]:
    owners = _owners(node)
    if exclusive and segments and len(owners) == 1:
        yield (*segments, REST), owners.pop()
        return
    if node.owner is not None:
        yield segments, node.owner
    if node.rest is not None:
        yield (*segments, REST), node.rest
    alone = exclusive and node.param is None and node.rest is None
    for segment, child in node.literal.items():
        yield from _reduced(child, (*segments, segment), exclusive=alone)
    if node.param is not None:
        yield from _reduced(node.param, (*segments, PARAM), exclusive=exclusive and node.rest is None)


def _owners(node: _Node) -> set[str]:
    owners = {owner for owner in (node.owner, node.rest) if owner is not None}
    for child in (*node.literal.values(), *((node.param,) if node.param else ())):
        owners |= _owners(child)
    return owners
