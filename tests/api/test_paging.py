"""Collections that grow without bound page in SQL: walking the pages gives the whole collection once."""

import pytest

from tests.conftest import a_change, a_source


def walk(client, url, limit, headers=None):
    items, cursor = [], None
    for _ in range(200):
        separator = "&" if "?" in url else "?"
        page_url = f"{url}{separator}limit={limit}" + (f"&cursor={cursor}" if cursor else "")
        response = client.get(page_url, headers=headers)
        assert response.status_code == 200, response.get_json()
        document = response.get_json()
        items.extend(document["items"])
        cursor = document["next_cursor"]
        if cursor is None:
            return items
    raise AssertionError("paging did not end")


def key(item):
    return (item.get("kind", "change"), item["id"])


@pytest.mark.parametrize("limit", [1, 2, 3, 7])
def test_walking_a_countrys_history_gives_every_item_once_in_order(client, editor, limit):
    # Changes and observations on the same day, an undated-looking backdated change, and more.
    for status, day in (("removed", "2026-11-20"), ("listed", "2026-11-21")):
        client.post(
            "/v1/lists/us-ear-d1/entries/VN/changes",
            json=a_change(status=status, effective_on=day),
            headers=editor,
        )
    client.post(
        "/v1/lists/us-ear-d1/entries/VN/observations",
        json={"status": "listed", "observed_on": "2026-11-21", "sources": [a_source()]},
        headers=editor,
    )
    whole = client.get("/v1/countries/VN/history?limit=500").get_json()
    assert whole["next_cursor"] is None

    walked = walk(client, "/v1/countries/VN/history", limit)

    assert [key(i) for i in walked] == [key(i) for i in whole["items"]]
    assert len({key(i) for i in walked}) == len(walked)
    kinds = {i.get("kind") for i in walked}
    assert {"observation", "change"} <= kinds


def test_history_paging_respects_known_at(client, editor):
    before = walk(client, "/v1/countries/VN/history?known_at=2026-11-01T00:00:00Z", 2)
    client.post("/v1/lists/us-ear-d1/entries/VN/changes", json=a_change(), headers=editor)

    after = walk(client, "/v1/countries/VN/history?known_at=2026-11-01T00:00:00Z", 2)

    assert [key(i) for i in after] == [key(i) for i in before]


@pytest.mark.parametrize("cursor", ["WyJ4IiwxLDJd", "WzEsMiwzXQ", "MQ", "WyIyMDI2LTAxLTAxIiw5LDFd"])
def test_a_foreign_history_cursor_is_a_422(client, cursor):
    response = client.get(f"/v1/countries/VN/history?cursor={cursor}")

    assert response.status_code == 422
    assert "cursor" in response.get_json()["errors"]


def test_walking_the_webhook_list_gives_every_subscription_once(client, editor):
    created = [
        client.post("/v1/webhooks", json={"url": f"http://127.0.0.1:9/h{i}"}, headers=editor).get_json()["id"]
        for i in range(5)
    ]
    client.delete(f"/v1/webhooks/{created[2]}", headers=editor)

    walked = walk(client, "/v1/webhooks", 2, headers=editor)

    assert [w["id"] for w in walked] == [i for i in created if i != created[2]]
