"""/datasets: upload (JSON or CSV), list, show, delete."""

from __future__ import annotations

from flask import Blueprint

from store import Session
from store import queries as q

from ..auth import owner
from ..decorators import CsvBody, body, query, responds
from ..errors import conflict
from ..schemas import DatasetCreate, DatasetCsvQuery, DatasetList, DatasetOut, PageQuery
from ..services import state
from ..uploads import Table, from_csv, from_json, store
from .rows import mine, one_page

bp = Blueprint("datasets", __name__, url_prefix="/datasets")


@bp.post("")
@body(DatasetCreate, csv=DatasetCsvQuery)
@responds(201, DatasetOut, headers={"Location": "URL of the new dataset"})
def create_dataset(payload: DatasetCreate | CsvBody) -> tuple[DatasetOut, dict[str, str]]:
    """Store a dataset sent as JSON, or as CSV with `?name=&target=`."""
    limit = state().settings.max_dataset_cells
    table: Table
    if isinstance(payload, CsvBody):
        assert isinstance(payload.params, DatasetCsvQuery)
        name, table = payload.params.name, from_csv(payload.text, payload.params, limit)
    else:
        name, table = payload.name, from_json(payload, limit)
    with Session.begin() as session:
        out = DatasetOut.model_validate(store(session, name, table, owner()))
    return out, {"Location": f"/datasets/{out.id}"}


@bp.get("")
@query(PageQuery)
@responds(200, DatasetList)
def list_datasets(params: PageQuery) -> DatasetList:
    """Datasets, newest first; pass `next_after` as `after` for the next page."""
    with Session.begin() as session:
        rows = q.list_datasets(session, owner=owner(), after=params.after, limit=params.limit + 1)
        page, next_after = one_page(rows, params.limit, DatasetOut.model_validate)
    return DatasetList(datasets=page, next_after=next_after)


@bp.get("/<id:dataset_id>")
@responds(200, DatasetOut, errors=(404,))
def get_dataset(dataset_id: int) -> DatasetOut:
    """One dataset's description (not its data)."""
    with Session.begin() as session:
        return DatasetOut.model_validate(mine(session, "dataset", dataset_id, q.get_dataset))


@bp.delete("/<id:dataset_id>")
@responds(204, errors=(404, 409))
def delete_dataset(dataset_id: int) -> None:
    """Delete a dataset; refused while a queued or running job uses it."""
    with Session.begin() as session:
        dataset = mine(session, "dataset", dataset_id, q.get_dataset)
        try:
            q.delete_dataset(session, dataset)
        except q.InUse as exc:
            raise conflict(str(exc)) from None
