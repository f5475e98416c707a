"""Business rules for items. Knows nothing of HTTP: it raises domain errors."""

from __future__ import annotations

from itertools import count

from ...errors import ConflictError, NotFoundError
from .schemas import Item, ItemCreate, ItemPage, ItemUpdate


class ItemStore:
    """In-memory storage, one per app; replace it with a repository over your database."""

    def __init__(self) -> None:
        self.items: dict[int, Item] = {}
        self.ids = count(1)


class ItemService:
    def __init__(self, store: ItemStore) -> None:
        self.store = store

    def list(self, *, limit: int, offset: int, tag: str | None = None) -> ItemPage:
        matching = [item for item in self.store.items.values() if tag is None or tag in item.tags]
        return ItemPage(items=matching[offset : offset + limit], total=len(matching), limit=limit, offset=offset)

    def get(self, item_id: int) -> Item:
        try:
            return self.store.items[item_id]
        except KeyError:
            raise NotFoundError(f"Item {item_id} does not exist.") from None

    def create(self, data: ItemCreate) -> Item:
        self._ensure_name_free(data.name)
        item = Item(id=next(self.store.ids), **data.model_dump())
        self.store.items[item.id] = item
        return item

    def update(self, item_id: int, changes: ItemUpdate) -> Item:
        item = self.get(item_id)
        if changes.name is not None and changes.name != item.name:
            self._ensure_name_free(changes.name)
        updated = item.model_copy(update=changes.model_dump(exclude_unset=True, exclude_none=True))
        self.store.items[item_id] = updated
        return updated

    def delete(self, item_id: int) -> None:
        self.get(item_id)
        del self.store.items[item_id]

    def _ensure_name_free(self, name: str) -> None:
        if any(item.name == name for item in self.store.items.values()):
            raise ConflictError(f"An item named {name!r} already exists.")
