from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Request

from .service import ItemService, ItemStore


def get_item_store(request: Request) -> ItemStore:
    # Kept on the app, not in a module global, so isolated test apps never share items.
    state = request.app.state
    if not hasattr(state, "item_store"):
        state.item_store = ItemStore()
    return state.item_store


def get_item_service(store: Annotated[ItemStore, Depends(get_item_store)]) -> ItemService:
    return ItemService(store)


class Pagination:
    def __init__(
        self,
        limit: Annotated[int, Query(ge=1, le=100, description="Items per page")] = 20,
        offset: Annotated[int, Query(ge=0, description="Items to skip")] = 0,
    ) -> None:
        self.limit = limit
        self.offset = offset


ItemServiceDep = Annotated[ItemService, Depends(get_item_service)]
PaginationDep = Annotated[Pagination, Depends()]
