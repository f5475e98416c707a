from __future__ import annotations

from decimal import Decimal

from pydantic import Field

from ...models import ApiModel


class ItemCreate(ApiModel):
    name: str = Field(min_length=1, max_length=100, examples=["Blue mug"])
    price: Decimal = Field(ge=0, max_digits=10, decimal_places=2, examples=["12.50"])
    tags: list[str] = Field(default_factory=list, max_length=10)


class ItemUpdate(ApiModel):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    price: Decimal | None = Field(default=None, ge=0, max_digits=10, decimal_places=2)
    tags: list[str] | None = Field(default=None, max_length=10)


class Item(ItemCreate):
    id: int


class ItemPage(ApiModel):
    items: list[Item]
    total: int
    limit: int
    offset: int
