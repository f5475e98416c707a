from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, status

from .dependencies import ItemServiceDep, PaginationDep
from .schemas import Item, ItemCreate, ItemPage, ItemUpdate

router = APIRouter(prefix="/items", tags=["items"])

# Bounded by what the id column holds (a 32-bit integer on every database).
ItemId = Annotated[int, Path(ge=1, le=2_147_483_647, description="Item identifier")]
# No NUL: PostgreSQL refuses it in a text parameter, as in a stored tag.
TagFilter = Annotated[str | None, Query(max_length=50, pattern=r"^[^\x00]*$", description="Only items with this tag")]


@router.get("")
async def list_items(
    service: ItemServiceDep,
    page: PaginationDep,
    tag: TagFilter = None,
) -> ItemPage:
    return await service.list(limit=page.limit, offset=page.offset, tag=tag)


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_item(data: ItemCreate, service: ItemServiceDep) -> Item:
    return await service.create(data)


@router.get("/{item_id}")
async def get_item(item_id: ItemId, service: ItemServiceDep) -> Item:
    return await service.get(item_id)


@router.patch("/{item_id}")
async def update_item(item_id: ItemId, changes: ItemUpdate, service: ItemServiceDep) -> Item:
    return await service.update(item_id, changes)


@router.delete("/{item_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_item(item_id: ItemId, service: ItemServiceDep) -> None:
    await service.delete(item_id)
