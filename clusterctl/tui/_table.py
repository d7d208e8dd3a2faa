"""``ResourceTable``: one resource view as a live table (a ``DataTable`` keyed by object key).

Changes arrive as keys (from the informers); ``apply_changes`` updates only the cells that differ,
removes rows that left the view and rebuilds (sorted) only when rows were added, so 1,000 pods
changing every second cost a few cell updates each, not a re-render of the table. The filter is
k9s': text matches anywhere in the row, ``-l SELECTOR`` is a label selector, plus the namespace
and a node or owner scope set by drill-down.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone

from rich.text import Text
from textual.widgets import DataTable
from textual.widgets.data_table import CellKey, ColumnKey, RowKey

from clusterctl.api.selectors import LabelSelector, parse_label_selector
from clusterctl.client.rest import Obj
from clusterctl.tui._kinds import KindView
from clusterctl.tui._source import ClusterSource


@dataclass
class ViewFilter:
    namespace: str | None = None  # None: all namespaces
    text: str = ""
    selector: str = ""  # label selector text (from "-l ..." or a drill-down)
    node: str | None = None
    _parsed: LabelSelector | None = field(default=None, repr=False)

    @classmethod
    def parse(cls, text: str, *, namespace: str | None = None, node: str | None = None) -> ViewFilter:
        """``/`` input: ``-l app=web`` (a selector), anything else matches text."""
        text = text.strip()
        if text.startswith("-l"):
            return cls(namespace=namespace, selector=text[2:].strip(), node=node)
        return cls(namespace=namespace, text=text, node=node)

    def label_selector(self) -> LabelSelector | None:
        if self.selector and self._parsed is None:
            self._parsed = parse_label_selector(self.selector)  # raises ApiError when malformed
        return self._parsed

    def describe(self) -> str:
        parts = [f"ns={self.namespace or 'all'}"]
        if self.selector:
            parts.append(f"-l {self.selector}")
        if self.text:
            parts.append(f"/{self.text}")
        if self.node:
            parts.append(f"node={self.node}")
        return " ".join(parts)

    def matches(self, kind: KindView, obj: Obj, cells: list[str]) -> bool:
        meta = obj.get("metadata") or {}
        if kind.namespaced and self.namespace and meta.get("namespace") != self.namespace:
            return False
        if self.node and (obj.get("spec") or {}).get("nodeName") != self.node:
            return False
        sel = self.label_selector()
        if sel is not None and not sel.matches(meta.get("labels") or {}):
            return False
        if self.text:
            needle = self.text.lower()
            return any(needle in c.lower() for c in cells)
        return True


class ResourceTable(DataTable):
    """The table of one ``KindView``; fed by ``apply_changes(keys)`` or ``rebuild()``."""

    DEFAULT_CSS = """
    ResourceTable { height: 1fr; }
    """

    def __init__(self, source: ClusterSource, kind: KindView, *, now: Callable[[], datetime] | None = None,
                 view_filter: ViewFilter | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes, cursor_type="row", zebra_stripes=False)
        self.source = source
        self.kind = kind
        self.now = now or (lambda: datetime.now(timezone.utc))
        self.view_filter = view_filter or ViewFilter()
        self._cells: dict[str, list[str]] = {}
        self._styles: dict[str, str] = {}
        #: (label, monotonic time) stamps waiting for the next render: latency probes (bench, tests)
        self.pending_stamps: list[tuple[str, float]] = []
        self.on_rendered: Callable[[str, float], None] | None = None
        # DataTable drops every rendered cell whenever any cell changes; with 1,000 rows changing
        # every second that re-renders the whole screen per update. Rendered cells are cached here
        # by row *version* instead, so an update re-renders only the rows that changed.
        self._row_version: dict[str, int] = {}
        self._layout_version = 0
        self._cell_cache: dict[tuple, object] = {}

    def on_mount(self) -> None:
        for name in self.kind.columns:
            self.add_column(name, key=name)
        self.rebuild()

    # ----------------------------------------------------------------- rows

    def _row(self, obj: Obj, now: datetime) -> tuple[list[str], str]:
        cells = self.kind.row(obj, now, self.source)
        return cells, self.kind.style(obj, cells)

    @staticmethod
    def _styled(cells: list[str], style: str) -> list[Text]:
        return [Text(c, style=style, no_wrap=True) for c in cells]

    def selected_key(self) -> str | None:
        if not self.row_count:
            return None
        try:
            return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        except Exception:  # cursor past the end after a removal
            return None

    def selected_object(self) -> Obj | None:
        key = self.selected_key()
        return self.source.get(self.kind.resource, key) if key else None

    def shown_keys(self) -> list[str]:
        return list(self._cells)

    def rebuild(self) -> None:
        """Recompute every row (sorted by key) and keep the cursor on the same object."""
        keep = self.selected_key()
        now = self.now()
        rows: list[tuple[str, list[str], str]] = []
        for obj in self.source.list(self.kind.resource):
            cells, style = self._row(obj, now)
            if self.view_filter.matches(self.kind, obj, cells):
                rows.append((_key(obj), cells, style))
        rows.sort(key=_sort_key(self.kind))
        self.clear()
        self._layout_version += 1
        self._cell_cache.clear()
        self._cells = {k: c for k, c, _ in rows}
        self._styles = {k: s for k, _, s in rows}
        for key, cells, style in rows:
            self.add_row(*self._styled(cells, style), key=key)
        if keep is not None and keep in self._cells:
            self.move_cursor(row=self.get_row_index(keep), animate=False)

    def apply_changes(self, keys: Iterable[str], stamps: Iterable[tuple[str, float]] = ()) -> None:
        """Fold changed object keys into the table: cell updates, removals, a rebuild on additions.

        Changed cells are written in place and only their rows are refreshed (``update_cell``
        would repaint the whole table for each cell)."""
        now = self.now()
        added = removed = widened = False
        changed_rows: list[str] = []
        for key in keys:
            obj = self.source.get(self.kind.resource, key)
            cells, style = self._row(obj, now) if obj is not None else ([], "")
            visible = obj is not None and self.view_filter.matches(self.kind, obj, cells)
            if key in self._cells:
                if not visible:
                    self.remove_row(key)
                    removed = True
                    del self._cells[key]
                    self._styles.pop(key, None)
                    continue
                old, old_style = self._cells[key], self._styles.get(key, "")
                if old != cells or old_style != style:
                    row = self._data[RowKey(key)]
                    for col, before, cell in zip(self.kind.columns, old, cells):
                        if before != cell or old_style != style:
                            row[ColumnKey(col)] = Text(cell, style=style, no_wrap=True)
                            if len(cell) > self.columns[ColumnKey(col)].content_width:
                                self._updated_cells.add(CellKey(RowKey(key), ColumnKey(col)))
                                self._require_update_dimensions = True
                                widened = True
                    self._row_version[key] = self._row_version.get(key, 0) + 1
                    changed_rows.append(key)
                self._cells[key], self._styles[key] = cells, style
            elif visible:
                added = True
        stamps = list(stamps)
        if added or removed or widened:
            if changed_rows:
                self._update_count += 1
            if added:
                self.rebuild()
            else:
                self._layout_version += 1
                self._cell_cache.clear()
                self.refresh()
            self.pending_stamps.extend(stamps)
            return
        if changed_rows:
            self._update_count += 1  # DataTable's own row cache is keyed by it; ours by row version
        top = self.scroll_offset.y
        bottom = top + self.size.height
        on_screen = False
        for key in changed_rows:
            index = self.get_row_index(key)
            if top <= index + 1 <= bottom:  # +1: the header line; rows out of view need no repaint
                self.refresh_row(index)
                on_screen = True
        if on_screen:
            self.pending_stamps.extend(stamps)
        elif stamps and self.on_rendered is not None:
            # nothing visible changed: the screen already shows the new state (reported apart)
            done = time.monotonic()
            for label, t0 in stamps:
                self.on_rendered(f"{label}_offscreen", done - t0)

    def _render_cell(self, row_index, column_index, base_style, width, cursor=False, hover=False):  # type: ignore[override]
        # content-addressed: "Running", "default", "node-a" render once for every row showing them
        if row_index < 0 or column_index < 0:
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        row_key = self._row_locations.get_key(row_index)
        column_key = self._column_locations.get_key(column_index)
        value = self._data[row_key].get(column_key)
        content = (value.plain, str(value.style)) if isinstance(value, Text) else (str(value), "")
        key = (column_index, content, base_style, width, cursor, hover, self._show_hover_cursor, self._pseudo_class_state)
        hit = self._cell_cache.get(key)
        if hit is None:
            if len(self._cell_cache) > 50_000:
                self._cell_cache.clear()
            hit = self._cell_cache[key] = super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        return hit

    def _render_line(self, y, x1, x2, base_style):  # type: ignore[override]
        # the same per-row-version caching for whole lines: a cursor move or one row's update
        # re-renders the rows it touched, not every visible line
        try:
            row_key, offset = self._get_offsets(y)
        except LookupError:
            return super()._render_line(y, x1, x2, base_style)
        row_index = self._row_locations.get(row_key)
        row_index = -1 if row_index is None else row_index
        cursor = self.cursor_coordinate.row == row_index
        hover = self.hover_coordinate.row == row_index
        key = ("line", row_key, offset, x1, x2, self.size.width, cursor, hover, base_style, self.cursor_type, self.show_cursor,
               self._show_hover_cursor, self._pseudo_class_state, self._row_version.get(row_key.value, 0), self._layout_version,
               self.fixed_rows, self.fixed_columns, tuple(c.content_width for c in self.columns.values()))
        hit = self._cell_cache.get(key)
        if hit is None:
            if len(self._cell_cache) > 50_000:
                self._cell_cache.clear()
            hit = self._cell_cache[key] = super()._render_line(y, x1, x2, base_style)
        return hit

    def render_lines(self, crop):  # type: ignore[override]
        lines = super().render_lines(crop)
        if self.pending_stamps:
            done = time.monotonic()
            stamps, self.pending_stamps = self.pending_stamps, []
            if self.on_rendered is not None:
                for label, t0 in stamps:
                    self.on_rendered(label, done - t0)
        return lines


def _key(obj: Obj) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta['namespace']}/{meta.get('name')}" if meta.get("namespace") else str(meta.get("name"))


def _sort_key(kind: KindView) -> Callable[[tuple[str, list[str], str]], object]:
    """Rows sort by object key (namespace/name), as kubectl lists them."""
    return lambda row: row[0]
