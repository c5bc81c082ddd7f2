"""/datasets over the real app and a real PostgreSQL database."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from flask.testing import FlaskClient

from store import Session
from store import queries as q
from store.settings import Settings

from .api_helpers import (
    IRIS_LIKE,
    SMALL_NET,
    XOR,
    client_for,
    leftover_jobs_cancelled,
    post_dataset,
    post_job,
    stored_frame,
)
from .processes import ROOT


@pytest.fixture(scope="module")
def client(service_settings: Settings) -> Iterator[FlaskClient]:
    with leftover_jobs_cancelled(client_for(service_settings)) as client:
        yield client


def stored_arrays(dataset_id: int) -> tuple[np.ndarray, np.ndarray]:
    """The stored features as numbers, and the targets (class labels one-hot)."""
    frame = stored_frame(dataset_id)
    with Session.begin() as session:
        dataset = q.get_dataset(session, dataset_id)
        assert dataset is not None
        targets = list(dataset.target_names or ())
    inputs = np.column_stack([frame[name].values for name in frame.names if name not in targets])
    columns = []
    for name in targets:
        column = frame[name]
        if column.kind == "category":
            columns.append(np.eye(len(column.categories))[column.values])
        else:
            columns.append(column.values.reshape(-1, 1))
    return inputs, np.hstack(columns)


def test_json_dataset_with_numeric_targets(client: FlaskClient) -> None:
    response = client.post("/datasets", json={"name": "xor", **XOR, "feature_names": ["a", "b"]})
    assert response.status_code == 201
    body = response.json
    assert response.headers["Location"] == f"/datasets/{body['id']}"
    assert body["name"] == "xor"
    assert (body["n_samples"], body["n_features"], body["n_targets"]) == (4, 2, 1)
    assert body["classes"] is None
    assert body["feature_names"] == ["a", "b"]
    assert body["created_at"].endswith(("Z", "+00:00"))
    inputs, targets = stored_arrays(body["id"])
    np.testing.assert_array_equal(inputs, XOR["inputs"])
    np.testing.assert_array_equal(targets, XOR["targets"])
    assert body["sha256"] == stored_frame(body["id"]).sha256()


def test_json_dataset_with_a_flat_list_of_numbers_as_targets(client: FlaskClient) -> None:
    body = post_dataset(client, targets=[0.5, 1.5, 2.5, 3.5])
    assert body["n_targets"] == 1
    _, targets = stored_arrays(body["id"])
    np.testing.assert_array_equal(targets, [[0.5], [1.5], [2.5], [3.5]])


def test_json_dataset_with_class_labels_is_one_hot(client: FlaskClient) -> None:
    body = post_dataset(client, targets=["dog", "cat", "emu", "cat"])
    assert body["classes"] == ["cat", "dog", "emu"]
    assert body["n_targets"] == 1 and body["task"] == "classification"
    _, targets = stored_arrays(body["id"])
    np.testing.assert_array_equal(targets, [[0, 1, 0], [1, 0, 0], [0, 0, 1], [1, 0, 0]])


def test_csv_dataset_with_class_labels(client: FlaskClient) -> None:
    response = client.post(
        "/datasets?name=iris&target=species", data=IRIS_LIKE, content_type="text/csv"
    )
    assert response.status_code == 201, response.json
    body = response.json
    assert body["name"] == "iris"
    assert (body["n_samples"], body["n_features"], body["n_targets"]) == (9, 4, 1)
    assert body["classes"] == ["setosa", "versicolor", "virginica"]
    assert body["feature_names"] == ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    assert body["target_names"] == ["species"]
    inputs, targets = stored_arrays(body["id"])
    assert inputs[0].tolist() == [5.1, 3.5, 1.4, 0.2]
    assert targets[:, 0].tolist() == [1, 1, 1, 0, 0, 0, 0, 0, 0]
    assert targets[:, 2].tolist() == [0, 0, 0, 0, 0, 0, 1, 1, 1]


def test_csv_dataset_with_numeric_target_columns_in_any_position(client: FlaskClient) -> None:
    text = "y1,x1,x2,y2\n1,2,3,4\n5,6,7,8\n\n9,10,11,12\n"
    response = client.post(
        "/datasets?name=two&target=y1,y2", data=text, content_type="text/csv; charset=utf-8"
    )
    assert response.status_code == 201, response.json
    body = response.json
    assert body["feature_names"] == ["x1", "x2"]
    assert body["target_names"] == ["y1", "y2"]
    assert body["classes"] is None
    inputs, targets = stored_arrays(body["id"])
    assert inputs.tolist() == [[2, 3], [6, 7], [10, 11]]
    assert targets.tolist() == [[1, 4], [5, 8], [9, 12]]


def test_csv_with_a_byte_order_mark_and_crlf_line_ends(client: FlaskClient) -> None:
    text = "\ufeffx,label\r\n1.5,yes\r\n2.5,no\r\n"
    response = client.post(
        "/datasets?name=bom&target=label", data=text.encode(), content_type="text/csv"
    )
    assert response.status_code == 201, response.json
    assert response.json["feature_names"] == ["x"]
    assert response.json["classes"] == ["no", "yes"]


def test_a_headerless_csv_upload_is_told_it_needs_a_header(client: FlaskClient) -> None:
    response = client.post(
        "/datasets?name=h&target=y", data="1,2,0\n0,1,1\n", content_type="text/csv"
    )
    assert response.status_code == 422
    assert response.json["error"] == {
        "code": "validation_error",
        "message": "no column 'y'; the columns are ['1', '2', '0'] "
        "(line 1 holds numbers: the CSV needs a header row first)",
        "field": "target",
    }


def test_blank_lines_before_the_header_are_skipped(client: FlaskClient) -> None:
    response = client.post(
        "/datasets?name=b&target=y", data="\nx,y\n1,2\n\noops,3\n", content_type="text/csv"
    )
    assert response.status_code == 422
    # The line number counts the blank lines too.
    assert response.json["error"]["message"] == (
        "line 5, column 1: 'oops' is text in a column of numbers; "
        "pass categorical=x if this column holds categories"
    )
    assert response.json["error"]["field"] == "x"


def test_a_name_given_twice_is_refused(client: FlaskClient) -> None:
    # Predictions take columns by name: two features of one name would get one value.
    twice = client.post("/datasets", json={**XOR, "name": "n", "feature_names": ["a", "a"]})
    assert twice.status_code == 422
    assert twice.json["error"] == {
        "code": "validation_error",
        "message": "'a' is named twice",
        "field": "feature_names",
    }
    both = {"inputs": [[0], [1]], "targets": [[0, 1], [1, 0]], "target_names": ["t", "t"]}
    inline = client.post(
        "/jobs",
        json={
            "dataset": both,
            "network": {"input_dim": 1, "layers": [{"units": 2}]},
            "training": {"epochs": 1},
        },
    )
    assert inline.status_code == 422
    assert inline.json["error"]["field"] == "dataset.target_names"


def test_get_and_404(client: FlaskClient) -> None:
    created = post_dataset(client)
    response = client.get(f"/datasets/{created['id']}")
    assert response.status_code == 200
    assert response.json == created
    missing = client.get("/datasets/2147483647")
    assert missing.status_code == 404
    assert missing.json["error"]["code"] == "not_found"


def test_listing_is_newest_first_with_a_cursor(client: FlaskClient) -> None:
    ids = [post_dataset(client, name=f"page-{i}")["id"] for i in range(5)]
    seen: list[int] = []
    after = ids[-1] + 1
    while True:
        response = client.get(f"/datasets?limit=2&after={after}")
        assert response.status_code == 200
        page = response.json
        seen += [d["id"] for d in page["datasets"]]
        if page["next_after"] is None or seen[-1] <= ids[0]:
            break
        assert page["next_after"] == seen[-1]
        after = page["next_after"]
    assert seen[:5] == list(reversed(ids))


def test_past_the_oldest_dataset_is_an_empty_last_page(client: FlaskClient) -> None:
    post_dataset(client)
    assert client.get("/datasets?after=1").json == {"datasets": [], "next_after": None}


def test_delete(client: FlaskClient) -> None:
    created = post_dataset(client)
    response = client.delete(f"/datasets/{created['id']}")
    assert response.status_code == 204
    assert response.data == b""
    assert client.get(f"/datasets/{created['id']}").status_code == 404
    again = client.delete(f"/datasets/{created['id']}")
    assert again.status_code == 404
    assert again.json["error"]["code"] == "not_found"


def test_delete_is_refused_while_a_job_is_queued(client: FlaskClient) -> None:
    dataset = post_dataset(client)
    job = post_job(client, dataset_id=dataset["id"], network=SMALL_NET, training={"epochs": 2})
    response = client.delete(f"/datasets/{dataset['id']}")
    assert response.status_code == 409
    assert response.json["error"]["code"] == "conflict"
    assert client.get(f"/datasets/{dataset['id']}").json == dataset
    # Once the job is over, the dataset can go; the job keeps running without it.
    assert client.post(f"/jobs/{job['id']}/cancel").status_code == 202
    assert client.delete(f"/datasets/{dataset['id']}").status_code == 204
    assert client.get(f"/jobs/{job['id']}").json["dataset_id"] is None


def test_dataset_cell_limit(service_settings: Settings) -> None:
    small = client_for(service_settings, max_dataset_cells=11)
    response = small.post("/datasets", json={"name": "big", **XOR})  # 4 x 3 = 12 values
    assert response.status_code == 422
    error = response.json["error"]
    assert error["code"] == "limit_exceeded"
    assert "BACKPROP_MAX_DATASET_CELLS" in error["message"]
    assert error["field"] == "inputs"
    csv = small.post("/datasets?name=big&target=species", data=IRIS_LIKE, content_type="text/csv")
    assert csv.status_code == 422
    assert csv.json["error"]["code"] == "limit_exceeded"


def test_the_cell_limit_counts_the_stored_columns(service_settings: Settings) -> None:
    # 4 rows x (2 features + 1 column of labels) = 12 values.
    small = client_for(service_settings, max_dataset_cells=10)
    response = small.post(
        "/datasets", json={"name": "wide", "inputs": XOR["inputs"], "targets": ["a", "b", "c", "d"]}
    )
    assert response.status_code == 422
    assert response.json["error"]["code"] == "limit_exceeded"


# --- CSV cells: every row is kept or refused, never dropped -------------------------

CASES = ROOT / "tests" / "data" / "cases"


def upload_error(client: FlaskClient, text: str, target: str = "y") -> dict[str, str]:
    response = client.post(f"/datasets?name=e&target={target}", data=text, content_type="text/csv")
    assert response.status_code == 422, response.json
    return response.json["error"]  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("text", "column", "missing"),
    [("a,b,y\n1,2,0\n3,,1\n", "b", 1), ("a,b,y\n1,2,0\nNA,4,1\nnan,5,0\n", "a", 2)],
)
def test_a_missing_feature_value_is_kept_as_missing(
    client: FlaskClient, text: str, column: str, missing: int
) -> None:
    response = client.post("/datasets?name=gaps&target=y", data=text, content_type="text/csv")
    assert response.status_code == 201, response.json
    profile = {c["name"]: c for c in response.json["profile"]["columns"]}
    assert profile[column]["missing"] == missing
    assert np.isnan(stored_frame(response.json["id"])[column].values).sum() == missing


def test_a_row_of_empty_cells_has_no_target(client: FlaskClient) -> None:
    # A row of empty cells is a row of missing values, not a blank line.
    error = upload_error(client, "a,b,y\n1,2,0\n,,\n3,4,1\n")
    assert error["field"] == "y"
    assert error["message"].startswith("line 3: the target 'y' is missing here")
    spaces = upload_error(client, "a,b,y\n1,2,0\n   \n3,4,1\n")
    assert spaces["message"] == "line 3: expected 3 values, got 1"


@pytest.mark.parametrize(
    ("cell", "problem"),
    [
        ("1_0", "expected a plain decimal number (digits, a point, an exponent), got '1_0'"),
        (
            "\u0661\u0662",
            "expected a plain decimal number (digits, a point, an exponent), got '\u0661\u0662'",
        ),
        ("infinity", "must be finite, got 'infinity'"),
        ("-inf", "must be finite, got '-inf'"),
        ("1e999", "must be finite, got '1e999'"),
    ],
)
def test_only_plain_decimal_numbers_are_numbers(
    client: FlaskClient, cell: str, problem: str
) -> None:
    error = upload_error(client, f"a,b,y\n1,2,0\n3,{cell},1\n")
    assert error["message"] == f"line 3, column 2: {problem}"
    assert error["field"] == "b"


def test_plain_numbers_in_every_written_form_load(client: FlaskClient) -> None:
    text = "a,b,y\n+1.5,-.25,0\n2.,1e3,1\n 3 ,4E-2,0\n"
    response = client.post("/datasets?name=forms&target=y", data=text, content_type="text/csv")
    assert response.status_code == 201, response.json
    inputs, _ = stored_arrays(response.json["id"])
    assert inputs.tolist() == [[1.5, -0.25], [2.0, 1000.0], [3.0, 0.04]]


def test_a_missing_target_is_not_a_class(client: FlaskClient) -> None:
    # c09: the NA price on line 4 used to become a fifth class, "NA".
    text = (CASES / "c09_target_with_NA.csv").read_text()
    assert upload_error(client, text, "price") == {
        "code": "validation_error",
        "message": "line 4: the target 'price' is missing here (1 rows have no target); "
        "remove those rows or fill them in",
        "field": "price",
    }
    for marker in ("", "n/a", "NULL", "NaN", "?"):
        error = upload_error(client, f"x,label\n1,cat\n2,{marker}\n3,dog\n", "label")
        assert error["field"] == "label"
        assert error["message"].startswith("line 3: the target 'label' is missing here")


def test_a_target_column_mixing_numbers_and_text_is_refused(client: FlaskClient) -> None:
    stray_word = upload_error(client, "x,y\n1,10\n2,20\n3,x\n4,40\n")
    assert stray_word == {
        "code": "validation_error",
        "message": "line 4, column 2: 'x' is text in a column of numbers; "
        "pass categorical=y if this column holds categories",
        "field": "y",
    }
    # Mostly text: a column of labels, one of which is written with digits.
    labels = client.post(
        "/datasets?name=l&target=y", data="x,y\n1,cat\n2,7\n3,dog\n", content_type="text/csv"
    )
    assert labels.status_code == 201, labels.json
    assert labels.json["classes"] == ["7", "cat", "dog"]


def test_csv_with_cr_line_ends(client: FlaskClient) -> None:
    response = client.post(
        "/datasets?name=cr&target=y", data="a,b,y\r1,2,0\r3,4,1\r", content_type="text/csv"
    )
    assert response.status_code == 201, response.json
    inputs, targets = stored_arrays(response.json["id"])
    assert inputs.tolist() == [[1, 2], [3, 4]]
    assert targets.tolist() == [[0], [1]]


def test_header_problems_name_the_column(client: FlaskClient) -> None:
    assert upload_error(client, "a,a,y\n1,2,0\n") == {
        "code": "validation_error",
        "message": "line 1: the column name 'a' appears twice",
        "field": "a",
    }
    assert upload_error(client, "a,,y\n1,2,0\n") == {
        "code": "validation_error",
        "message": "line 1, column 2: the header row needs a name here",
        "field": "body",
    }
