"""Synthetic domains of realistic weight, written straight into a rendered service.

Each domain has the layout ``new-domain`` creates (``router``, ``schemas``, ``service``,
``dependencies``) but the weight of a real one: 5 endpoints (list with query parameters,
create with a nested body, get, partial update, delete) and 11 pydantic models (nested
models, lists, optionals, enums, dicts, field constraints, a field and a model validator),
every model deriving from the service's ``ApiModel``. Class names carry the domain's name,
as in a real service, so the OpenAPI document has no name clashes to resolve.

The same files are written for fastapi-lazyrouter with one difference: the router is a
``fastapi_lazyrouter.LazyApiRouter`` (the library only defers routers of that class).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from string import Template

# Bump when the generated code changes: reused workspaces are regenerated.
GENERATOR_VERSION = 3
ENDPOINTS_PER_DOMAIN = 5
MODELS_PER_DOMAIN = 11


@dataclass(frozen=True)
class Domain:
    index: int

    @property
    def name(self) -> str:
        return f"dom_{self.index:04d}"

    @property
    def prefix(self) -> str:
        # Same width for every domain: no prefix is a string prefix of another (that would
        # trip fastapi-lazyrouter's ``startswith`` match, and we benchmark, not test, it).
        return f"/dom-{self.index:04d}"

    @property
    def model(self) -> str:
        return f"Dom{self.index:04d}"


def domains(count: int) -> list[Domain]:
    return [Domain(index) for index in range(count)]


def create_body(domain: Domain) -> dict[str, object]:
    """A valid body for ``POST <prefix>``: every nested model is exercised."""
    contact = {
        "name": "Ada Lovelace",
        "email": "ada@example.com",
        "phone": "+44 20 7946 0000",
        "address": {"street": "12 Analytical St", "city": "London", "postal_code": "N1 9GU", "country": "gb"},
    }
    return {
        "title": f"first {domain.name}",
        "status": "active",
        "priority": 2,
        "owner": contact,
        "lines": [
            {"sku": "SKU-1", "quantity": 3, "unit_price": {"amount": "12.50", "currency": "EUR"}, "tags": ["a"]},
            {"sku": "SKU-2", "quantity": 1, "unit_price": {"amount": "99.00", "currency": "EUR"}},
        ],
        "notes": [{"author": {"name": "Grace", "email": "grace@example.com"}, "text": "looks good"}],
        "attachments": [{"filename": "spec.pdf", "content_type": "application/pdf", "size_bytes": 1024}],
        "labels": {"team": "core"},
    }


_INIT = '"""$name: a synthetic benchmark domain."""\n'

_SCHEMAS = """from __future__ import annotations

import enum
from datetime import datetime
from decimal import Decimal

from pydantic import Field, field_validator, model_validator

from ...models import ApiModel


class ${model}Status(str, enum.Enum):
    DRAFT = "draft"
    ACTIVE = "active"
    ARCHIVED = "archived"


class ${model}Priority(enum.IntEnum):
    LOW = 1
    NORMAL = 2
    HIGH = 3


class ${model}Address(ApiModel):
    street: str = Field(min_length=1, max_length=200)
    city: str = Field(min_length=1, max_length=100)
    postal_code: str = Field(pattern=r"^[A-Z0-9 -]{3,10}$$")
    country: str = Field(min_length=2, max_length=2, description="ISO 3166-1 alpha-2")

    @field_validator("country")
    @classmethod
    def _upper_country(cls, value: str) -> str:
        return value.upper()


class ${model}Contact(ApiModel):
    name: str = Field(min_length=1, max_length=100)
    email: str = Field(pattern=r"^[^@\\s]+@[^@\\s]+$$", max_length=254)
    phone: str | None = Field(default=None, pattern=r"^\\+?[0-9 ]{6,20}$$")
    address: ${model}Address | None = None


class ${model}Money(ApiModel):
    amount: Decimal = Field(ge=0, max_digits=12, decimal_places=2)
    currency: str = Field(default="EUR", pattern=r"^[A-Z]{3}$$")


class ${model}LineItem(ApiModel):
    sku: str = Field(min_length=1, max_length=40)
    quantity: int = Field(ge=1, le=10_000)
    unit_price: ${model}Money
    tags: list[str] = Field(default_factory=list, max_length=10)


class ${model}Attachment(ApiModel):
    filename: str = Field(min_length=1, max_length=255)
    content_type: str = "application/octet-stream"
    size_bytes: int = Field(ge=0, le=50_000_000)


class ${model}Note(ApiModel):
    author: ${model}Contact
    text: str = Field(min_length=1, max_length=2000)
    created_at: datetime | None = None


class ${model}AuditEntry(ApiModel):
    action: ${model}Status
    at: datetime
    actor: str


class ${model}Create(ApiModel):
    title: str = Field(min_length=1, max_length=200)
    status: ${model}Status = ${model}Status.DRAFT
    priority: ${model}Priority = ${model}Priority.NORMAL
    owner: ${model}Contact
    lines: list[${model}LineItem] = Field(default_factory=list, max_length=100)
    notes: list[${model}Note] = Field(default_factory=list)
    attachments: list[${model}Attachment] = Field(default_factory=list, max_length=20)
    labels: dict[str, str] = Field(default_factory=dict)
    due: datetime | None = None

    @model_validator(mode="after")
    def _archived_has_no_due_date(self) -> ${model}Create:
        if self.status is ${model}Status.ARCHIVED and self.due is not None:
            raise ValueError("an archived $title has no due date")
        return self


class ${model}Update(ApiModel):
    title: str | None = Field(default=None, min_length=1, max_length=200)
    status: ${model}Status | None = None
    priority: ${model}Priority | None = None
    owner: ${model}Contact | None = None
    lines: list[${model}LineItem] | None = Field(default=None, max_length=100)
    labels: dict[str, str] | None = None
    due: datetime | None = None


class ${model}(${model}Create):
    id: int
    total: ${model}Money
    history: list[${model}AuditEntry] = Field(default_factory=list)


class ${model}Page(ApiModel):
    items: list[${model}]
    total: int
    limit: int
    offset: int
"""

_SERVICE = '''"""Business rules for $title. Knows nothing of HTTP: it raises domain errors."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from ...errors import NotFoundError
from .schemas import ${model}, ${model}AuditEntry, ${model}Create, ${model}Money, ${model}Page, ${model}Update


class ${model}Service:
    def __init__(self, store: dict[int, ${model}]) -> None:
        self.store = store

    def list(self, *, limit: int, offset: int, status: str | None) -> ${model}Page:
        found = [entry for entry in self.store.values() if status is None or entry.status.value == status]
        return ${model}Page(items=found[offset : offset + limit], total=len(found), limit=limit, offset=offset)

    def get(self, entry_id: int) -> ${model}:
        try:
            return self.store[entry_id]
        except KeyError:
            raise NotFoundError(f"$title {entry_id} does not exist.") from None

    def create(self, data: ${model}Create) -> ${model}:
        created = ${model}(
            id=len(self.store) + 1,
            total=self._total(data.lines),
            history=[${model}AuditEntry(action=data.status, at=datetime.now(UTC), actor=data.owner.name)],
            **data.model_dump(),
        )
        self.store[created.id] = created
        return created

    def update(self, entry_id: int, changes: ${model}Update) -> ${model}:
        current = self.get(entry_id)
        merged = {**current.model_dump(), **changes.model_dump(exclude_unset=True)}
        merged["total"] = self._total(changes.lines) if changes.lines is not None else current.total
        updated = ${model}.model_validate(merged)
        self.store[entry_id] = updated
        return updated

    def delete(self, entry_id: int) -> None:
        self.get(entry_id)
        del self.store[entry_id]

    @staticmethod
    def _total(lines: object) -> ${model}Money:
        prices = (line.unit_price.amount * line.quantity for line in lines or ())  # type: ignore[attr-defined]
        return ${model}Money(amount=sum(prices, Decimal(0)))
'''

# No ``from __future__ import annotations`` here: FastAPI 0.119 (fastapi-lazyrouter's) cannot
# resolve string annotations of a class used as a dependency (``Pagination.__init__``).
_DEPENDENCIES = """from typing import Annotated

from fastapi import Depends, Query, Request

from .schemas import ${model}
from .service import ${model}Service


def get_${name}_service(request: Request) -> ${model}Service:
    # Kept on the app, not in a module global, so isolated apps never share data.
    state = request.app.state
    if not hasattr(state, "${name}_store"):
        state.${name}_store = {}
    store: dict[int, ${model}] = state.${name}_store
    return ${model}Service(store)


class ${model}Pagination:
    def __init__(
        self,
        limit: Annotated[int, Query(ge=1, le=100, description="Entries per page")] = 20,
        offset: Annotated[int, Query(ge=0, description="Entries to skip")] = 0,
    ) -> None:
        self.limit = limit
        self.offset = offset


${model}ServiceDep = Annotated[${model}Service, Depends(get_${name}_service)]
${model}PaginationDep = Annotated[${model}Pagination, Depends()]
"""

_ROUTER = """from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query, status
$router_import

from .dependencies import ${model}PaginationDep, ${model}ServiceDep
from .schemas import ${model}, ${model}Create, ${model}Page, ${model}Update

router = $router_class(prefix="$prefix", tags=["$name"])

EntryId = Annotated[int, Path(ge=1, description="$title identifier")]


@router.get("")
async def list_${name}(
    service: ${model}ServiceDep,
    page: ${model}PaginationDep,
    state: Annotated[str | None, Query(max_length=20, description="Only entries in this status")] = None,
) -> ${model}Page:
    return service.list(limit=page.limit, offset=page.offset, status=state)


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_${name}(data: ${model}Create, service: ${model}ServiceDep) -> ${model}:
    return service.create(data)


@router.get("/{entry_id}")
async def get_${name}(entry_id: EntryId, service: ${model}ServiceDep) -> ${model}:
    return service.get(entry_id)


@router.patch("/{entry_id}")
async def update_${name}(entry_id: EntryId, changes: ${model}Update, service: ${model}ServiceDep) -> ${model}:
    return service.update(entry_id, changes)


@router.delete("/{entry_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_${name}(entry_id: EntryId, service: ${model}ServiceDep) -> None:
    service.delete(entry_id)
"""

_FASTAPI_ROUTER = {"router_import": "from fastapi import APIRouter", "router_class": "APIRouter"}
_LAZYROUTER_ROUTER = {"router_import": "from fastapi_lazyrouter import LazyApiRouter", "router_class": "LazyApiRouter"}


def _values(domain: Domain, router: dict[str, str]) -> dict[str, str]:
    return {
        "name": domain.name,
        "model": domain.model,
        "prefix": domain.prefix,
        "title": domain.name.replace("_", " "),
        **router,
    }


def write_domain(domains_dir: Path, domain: Domain, *, lazyrouter: bool = False) -> Path:
    """Write one domain package under ``domains_dir``; returns the package directory."""
    values = _values(domain, _LAZYROUTER_ROUTER if lazyrouter else _FASTAPI_ROUTER)
    package = domains_dir / domain.name
    package.mkdir(parents=True, exist_ok=True)
    files = {
        "__init__.py": _INIT,
        "schemas.py": _SCHEMAS,
        "service.py": _SERVICE,
        "dependencies.py": _DEPENDENCIES,
        "router.py": _ROUTER,
    }
    for file, template in files.items():
        (package / file).write_text(Template(template).substitute(values), encoding="utf-8")
    return package


def write_domains(domains_dir: Path, count: int, *, lazyrouter: bool = False) -> list[Domain]:
    generated = domains(count)
    for domain in generated:
        write_domain(domains_dir, domain, lazyrouter=lazyrouter)
    return generated


# --- the fastapi-lazyrouter twin --------------------------------------------------------
# A package with the same domains, a ``models.ApiModel`` with the service's configuration,
# a ``NotFoundError`` mapped to 404, and an app that includes every domain router behind
# ``LazyApiRouterMiddleware``, as the library's README describes ("manual usage").

_LR_MODELS = """from pydantic import BaseModel, ConfigDict


class ApiModel(BaseModel):
    # The service's ApiModel configuration: defer_build is what fastapi-lazyrouter needs.
    model_config = ConfigDict(defer_build=True, extra="forbid", str_strip_whitespace=True, populate_by_name=True)
"""

_LR_ERRORS = """from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse


class NotFoundError(Exception):
    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def install_error_handlers(app: FastAPI) -> None:
    async def not_found(request: Request, exc: NotFoundError) -> JSONResponse:
        return JSONResponse({"title": "Not Found", "status": 404, "detail": exc.detail}, status_code=404)

    app.add_exception_handler(NotFoundError, not_found)
"""

_LR_APP = '''"""The same domains served by fastapi-lazyrouter: routers mounted by its middleware."""

from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi_lazyrouter import LazyApiRouterMiddleware

from .errors import install_error_handlers
$imports

ROUTERS = [$routers]


@asynccontextmanager
async def lifespan(app):
    yield


def create_app() -> FastAPI:
    app = FastAPI(lifespan=lifespan)
    install_error_handlers(app)
    app.add_middleware(LazyApiRouterMiddleware)

    @app.get("/health/ready", include_in_schema=False)
    async def ready() -> dict[str, str]:
        return {"status": "ready"}

    for router in ROUTERS:
        app.include_router(router)
    return app
'''


def write_lazyrouter_package(root: Path, package: str, count: int) -> Path:
    """``root/package``: an importable twin of the service's domains for fastapi-lazyrouter."""
    directory = root / package
    (directory / "domains").mkdir(parents=True, exist_ok=True)
    (directory / "__init__.py").write_text("", encoding="utf-8")
    (directory / "domains" / "__init__.py").write_text("", encoding="utf-8")
    (directory / "models.py").write_text(_LR_MODELS, encoding="utf-8")
    (directory / "errors.py").write_text(_LR_ERRORS, encoding="utf-8")
    generated = write_domains(directory / "domains", count, lazyrouter=True)
    imports = "\n".join(f"from .domains.{domain.name}.router import router as {domain.name}" for domain in generated)
    routers = ", ".join(domain.name for domain in generated)
    app = Template(_LR_APP).substitute(imports=imports, routers=routers)
    (directory / "app.py").write_text(app, encoding="utf-8")
    return directory
