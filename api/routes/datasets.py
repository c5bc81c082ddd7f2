"""/datasets: upload (JSON arrays, JSON records, CSV or Parquet), list, show, delete."""

from __future__ import annotations

from contextlib import ExitStack

from flask import Blueprint

from store import Session, storage
from store import queries as q

from ..auth import owner
from ..bodies import read_body
from ..decorators import TableBody, body, query, responds
from ..errors import conflict, invalid
from ..schemas import DatasetCreate, DatasetCsvQuery, DatasetList, DatasetOut, PageQuery
from ..services import state
from ..tables import ReadOptions, read_records
from ..uploads import Upload, from_arrays, from_table, split_names, store
from .rows import mine, one_page

bp = Blueprint("datasets", __name__, url_prefix="/datasets")


def _from_json(payload: DatasetCreate, max_cells: int) -> Upload:
    if payload.records is not None:
        if payload.inputs is not None or payload.targets is not None:
            raise invalid("records", "send either records or inputs and targets, not both")
        targets = split_names(payload.target)
        options = ReadOptions(
            categorical=frozenset(payload.categorical or ()),
            ignore=frozenset(payload.ignore or ()),
            keep=frozenset(targets),
            max_cells=max_cells,
        )
        read = read_records(payload.records, options, field="records")
        return from_table(read, targets, payload.task, max_cells)
    if payload.inputs is None or payload.targets is None:
        missing = "inputs" if payload.inputs is None else "targets"
        raise invalid(missing, "is required (or send records with a target)")
    return from_arrays(
        payload.inputs, payload.targets, payload.feature_names, payload.target_names, max_cells
    )


@bp.post("")
@body(DatasetCreate, csv=DatasetCsvQuery, upload=True)
@responds(201, DatasetOut, headers={"Location": "URL of the new dataset"})
def create_dataset(payload: DatasetCreate | TableBody) -> tuple[DatasetOut, dict[str, str]]:
    """Store a dataset: JSON arrays or records, or a CSV or Parquet body.

    A CSV or Parquet body goes to a temporary file as it arrives, not to memory, and
    may be as large as `BACKPROP_MAX_UPLOAD_BYTES` (other bodies:
    `BACKPROP_MAX_BODY_BYTES`).

    A CSV (or `text/tab-separated-values`) or Parquet body takes `?name=&target=`.
    Columns are typed on the way in (numbers, categories, ignored);
    `GET /datasets/<id>` shows the profile.
    """
    limit = state().settings.max_dataset_cells
    if isinstance(payload, TableBody):
        params = payload.params
        assert isinstance(params, DatasetCsvQuery)
        targets = split_names(params.target)
        read = read_body(
            payload,
            categorical=frozenset(split_names(params.categorical)),
            ignore=frozenset(split_names(params.ignore)),
            keep=frozenset(targets),
            max_cells=limit,
        )
        name, upload = params.name, from_table(read, targets, params.task, limit)
    else:
        name, upload = payload.name, _from_json(payload, limit)
    with ExitStack() as staged, Session.begin() as session:
        out = DatasetOut.model_validate(store(session, name, upload, owner(), staged))
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
    """One dataset's description and profile (not its data)."""
    with Session.begin() as session:
        return DatasetOut.model_validate(mine(session, "dataset", dataset_id, q.get_dataset))


@bp.delete("/<id:dataset_id>")
@responds(204, errors=(404, 409))
def delete_dataset(dataset_id: int) -> None:
    """Delete a dataset; refused (409) while a queued or running job or an unfinished
    sweep uses it."""
    with Session.begin() as session:
        dataset = mine(session, "dataset", dataset_id, q.get_dataset)
        try:
            q.delete_dataset(session, dataset)
        except q.InUse as exc:
            raise conflict(str(exc)) from None
    storage().discard(dataset.data_key)
    storage().forget(dataset.sha256)
