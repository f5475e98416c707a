from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import Field

from ...models import ApiModel

# Text the database can store: PostgreSQL refuses NUL characters in text.
_NO_NUL = r"^[^\x00]*$"
Name = Annotated[str, Field(min_length=1, max_length=100, pattern=_NO_NUL, examples=["Blue mug"])]
Tag = Annotated[str, Field(min_length=1, max_length=50, pattern=_NO_NUL)]
Price = Annotated[Decimal, Field(ge=0, max_digits=10, decimal_places=2, examples=["12.50"])]


class ItemCreate(ApiModel):
    name: Name
    price: Price
    tags: list[Tag] = Field(default_factory=list, max_length=10)


class ItemUpdate(ApiModel):
    name: Name | None = None
    price: Price | None = None
    tags: list[Tag] | None = Field(default=None, max_length=10)


class Item(ItemCreate):
    id: int


class ItemPage(ApiModel):
    items: list[Item]
    total: int
    limit: int
    offset: int
